"""Writes for contacts and conversations."""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from conversations.models import AIMode, Author, Contact, Conversation, ConversationStatus, Message
from conversations.outbound import message_outbound_create
from conversations.turns import conversation_reprocess
from icmp.errors import ApplicationError

logger = logging.getLogger(__name__)

DEFAULT_PAUSE_REASON = "AI paused by staff."
HANDOFF_REASON_MAX = 500
CONTACT_NAME_MAX = 200


def contact_update(*, contact: Contact, name: str) -> Contact:
    name = (name or "").strip()
    if len(name) > CONTACT_NAME_MAX:
        raise ApplicationError(
            f"name may have at most {CONTACT_NAME_MAX} characters.", code="invalid", field="name"
        )
    if name != contact.name:
        contact.name = name
        contact.save(update_fields=["name", "updated_at"])
    return contact


def conversation_ai_pause(
    *, conversation: Conversation, reason: str = "", by: AbstractBaseUser | None = None
) -> Conversation:
    """Stop the AI from answering in this conversation; staff reply by hand.

    A conditional UPDATE: pausing a paused conversation changes nothing, so the
    reason the pipeline gave for an automatic handoff is not overwritten. The
    pipeline re-checks ai_mode just before sending, so a reply already being
    written is dropped.
    """
    reason = (reason or "").strip()[:HANDOFF_REASON_MAX] or DEFAULT_PAUSE_REASON
    changed = Conversation.objects.filter(pk=conversation.pk, ai_mode=AIMode.AUTO).update(
        ai_mode=AIMode.PAUSED, handoff_reason=reason, updated_at=timezone.now()
    )
    if changed:
        logger.info(
            "conversation AI paused",
            extra={
                "business_id": str(conversation.business_id),
                "conversation_id": str(conversation.pk),
                "by_user_id": getattr(by, "pk", None),
            },
        )
    conversation.refresh_from_db(fields=["ai_mode", "needs_human", "handoff_reason", "updated_at"])
    return conversation


def conversation_ai_resume(*, conversation: Conversation) -> Conversation:
    """Hand the conversation back to the AI and clear the staff flag and reason. Idempotent.

    Customer messages left unanswered since the last reply (skipped while
    paused, or failed during an LLM outage) are processed again.
    """
    changed = (
        Conversation.objects.filter(pk=conversation.pk)
        .filter(Q(ai_mode=AIMode.PAUSED) | Q(needs_human=True) | ~Q(handoff_reason=""))
        .update(
            ai_mode=AIMode.AUTO,
            needs_human=False,
            handoff_reason="",
            handoff_notified_at=None,
            updated_at=timezone.now(),
        )
    )
    if changed:
        conversation_reprocess(conversation=conversation)
        logger.info(
            "conversation AI resumed",
            extra={"business_id": str(conversation.business_id), "conversation_id": str(conversation.pk)},
        )
    conversation.refresh_from_db(fields=["ai_mode", "needs_human", "handoff_reason", "updated_at"])
    return conversation


STAFF_REPLY_PAUSE_REASON = "Staff replied"


@transaction.atomic
def conversation_staff_reply(*, conversation: Conversation, text: str, user=None) -> Message:
    """A staff answer: queued now, sent after commit through the normal send path; the AI pauses."""
    message = message_outbound_create(conversation=conversation, author=Author.STAFF, text=text, sent_by=user)
    conversation_ai_pause(conversation=conversation, reason=STAFF_REPLY_PAUSE_REASON, by=user)
    return message


def conversation_close(*, conversation: Conversation) -> Conversation:
    """Close an open conversation (staff are done with it). Idempotent.

    The contact's next message opens a new conversation, so an old thread's
    stage and collected data do not leak into a new request.
    """
    now = timezone.now()
    changed = Conversation.objects.filter(pk=conversation.pk, status=ConversationStatus.OPEN).update(
        status=ConversationStatus.CLOSED, closed_at=now, updated_at=now
    )
    if changed:
        logger.info(
            "conversation closed",
            extra={"business_id": str(conversation.business_id), "conversation_id": str(conversation.pk)},
        )
    conversation.refresh_from_db(fields=["status", "closed_at", "updated_at"])
    return conversation
