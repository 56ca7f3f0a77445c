"""Storing inbound items: contact, open conversation, each message once."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from businesses.models import Agent
from channels_app.adapters.base import InboundMessage
from channels_app.models import ChannelAccount
from conversations import turns
from conversations.inbound.cleaning import clean_json, clean_str
from conversations.inbound.contacts import CONTACT_ID_MAX, PHONE_MAX, contact_resolve
from conversations.inbound.edits import message_edit_apply, message_withdraw_apply
from conversations.models import (
    Author,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
    MessageType,
)
from conversations.services import conversation_ai_pause
from stages.selectors import stage_initial_get

logger = logging.getLogger(__name__)

# Column sizes: an id longer than its column is a malformed item, not a crash.
EXTERNAL_ID_MAX = 255

REACTION_SKIPPED = "Reactions are not answered."
STANDBY_SKIPPED = "Another app controls this thread (standby)."
ECHO_PAUSE_REASON = "Staff replied from the Meta inbox"


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    ECHO_OURS = "echo_ours"
    ECHO_STAFF = "echo_staff"
    DELETED = "deleted"
    EDITED = "edited"
    UNKNOWN = "unknown"
    INVALID = "invalid"


@dataclass(frozen=True)
class StoredMessage:
    """What storing one item did, and the row it concerns (if any)."""

    outcome: Outcome
    message: Message | None = None


def _not_after_now(when: datetime) -> datetime:
    # A provider time in the future must not hold the 24-hour window open.
    return min(when, timezone.now())


# Storing one message


def _existing(account: ChannelAccount, external_id: str) -> Message | None:
    return Message.objects.filter(channel_account=account, external_id=external_id).first()


def _insert(message: Message) -> Message | None:
    """INSERT inside a savepoint; None when the (channel account, external id) already exists."""
    try:
        with transaction.atomic():
            message.save(force_insert=True)
    except IntegrityError:
        if message.external_id and _existing(message.channel_account, message.external_id) is not None:
            return None
        raise
    return message


def conversation_open_get_or_create(*, account: ChannelAccount, contact: Contact) -> Conversation:
    """The contact's open conversation, or a new one in the business's initial stage."""
    conversation = Conversation.objects.filter(contact=contact, status=ConversationStatus.OPEN).first()
    if conversation is not None:
        return conversation
    agent_id = (
        account.agent_id
        or Agent.objects.filter(business_id=account.business_id, is_default=True)
        .values_list("pk", flat=True)
        .first()
    )
    try:
        with transaction.atomic():
            return Conversation.objects.create(
                business_id=account.business_id,
                contact=contact,
                channel_account=account,
                stage=stage_initial_get(business=account.business),
                agent_id=agent_id,
            )
    except IntegrityError:
        # conversation_one_open_per_contact: a concurrent delivery opened it first.
        return Conversation.objects.get(contact=contact, status=ConversationStatus.OPEN)


def _conversation_touch(conversation_id: uuid.UUID, *, at: datetime, inbound: bool) -> None:
    at = _not_after_now(at)
    # One UPDATE; times only move forward (Meta delivers out of order).
    fields: dict[str, Any] = {"last_message_at": Greatest(F("last_message_at"), Value(at))}
    if inbound:
        fields["last_inbound_at"] = Greatest(Coalesce(F("last_inbound_at"), Value(at)), Value(at))
    Conversation.objects.filter(pk=conversation_id).update(**fields)


def _message_fields(item: InboundMessage) -> dict[str, Any]:
    mtype = item.type.value if item.type.value in MessageType.values else MessageType.UNSUPPORTED
    reply_to = clean_str(item.reply_to_external_id or "")
    return {
        "type": mtype,
        "text": clean_str(item.text),
        "payload": clean_json(dict(item.payload)),
        "raw": clean_json(item.raw) if isinstance(item.raw, dict) else {},
        "external_id": item.external_id,
        "reply_to_external_id": reply_to if len(reply_to) <= EXTERNAL_ID_MAX else "",
        "provider_timestamp": item.timestamp,
    }


def inbound_message_store(
    *, account: ChannelAccount, item: InboundMessage, enqueue: bool = True
) -> StoredMessage:
    """Store one customer message once; only a new, answerable one is queued for processing.

    A redelivery finds the row by (channel account, external id); a concurrent
    one loses the INSERT race on the unique constraint. Either way: nothing
    stored, nothing enqueued.
    """
    existing = _existing(account, item.external_id)
    if existing is not None:
        return StoredMessage(Outcome.DUPLICATE, existing)
    contact = contact_resolve(
        account=account, external_id=item.contact_external_id, name=item.contact_name, identity=item.identity
    )
    conversation = conversation_open_get_or_create(account=account, contact=contact)
    status, reason = MessageStatus.RECEIVED, ""
    if item.type == MessageType.REACTION:
        status, reason = MessageStatus.SKIPPED, REACTION_SKIPPED
    elif item.is_standby:
        status, reason = MessageStatus.SKIPPED, STANDBY_SKIPPED
    message = _insert(
        Message(
            business_id=account.business_id,
            conversation=conversation,
            channel_account=account,
            direction=Direction.IN,
            author=Author.CUSTOMER,
            status=status,
            error=reason,
            stage_id=conversation.stage_id,
            status_changed_at=timezone.now(),
            **_message_fields(item),
        )
    )
    if message is None:
        return StoredMessage(Outcome.DUPLICATE, _existing(account, item.external_id))
    _conversation_touch(conversation.pk, at=item.timestamp, inbound=True)
    if enqueue and status == MessageStatus.RECEIVED:
        turns.conversation_process_enqueue(conversation_id=conversation.pk)
    return StoredMessage(Outcome.STORED, message)


def _ours_by_metadata(account: ChannelAccount, item: InboundMessage) -> bool:
    # Messenger echoes carry back the Send API `metadata`; when our sender puts
    # the message id there, an echo that beats the send response is still ours.
    try:
        message_id = uuid.UUID(str(item.payload.get("metadata", "")))
    except ValueError:
        return False
    return Message.objects.filter(pk=message_id, channel_account=account, direction=Direction.OUT).exists()


def _echo_apply(*, account: ChannelAccount, item: InboundMessage) -> StoredMessage:
    """A message the account sent: ours (ignored) or a human's from Meta's inbox (stored, AI paused).

    Never processed: the AI must not answer its own business.
    """
    existing = _existing(account, item.external_id)
    if existing is not None:
        return StoredMessage(Outcome.ECHO_OURS, existing)
    app_id = str(getattr(settings, "META_APP_ID", "") or "")
    if (app_id and item.echo_app_id == app_id) or _ours_by_metadata(account, item):
        return StoredMessage(Outcome.ECHO_OURS)
    contact = contact_resolve(account=account, external_id=item.contact_external_id, identity=item.identity)
    conversation = conversation_open_get_or_create(account=account, contact=contact)
    message = _insert(
        Message(
            business_id=account.business_id,
            conversation=conversation,
            channel_account=account,
            direction=Direction.OUT,
            author=Author.STAFF,
            status=MessageStatus.SENT,
            stage_id=conversation.stage_id,
            status_changed_at=timezone.now(),
            **_message_fields(item),
        )
    )
    if message is None:
        return StoredMessage(Outcome.ECHO_OURS, _existing(account, item.external_id))
    _conversation_touch(conversation.pk, at=item.timestamp, inbound=False)
    conversation_ai_pause(conversation=conversation, reason=ECHO_PAUSE_REASON)
    return StoredMessage(Outcome.ECHO_STAFF, message)


def _changed_apply(*, account: ChannelAccount, item: InboundMessage) -> StoredMessage:
    """An edit, revoke or unsend of an earlier message: the original changes, nothing new is stored."""
    if item.edit_of:
        message = message_edit_apply(
            account=account,
            original_external_id=item.edit_of,
            edit_external_id=item.external_id,
            type=item.type.value,
            text=item.text,
            payload=dict(item.payload),
            at=item.timestamp,
        )
        return StoredMessage(Outcome.EDITED if message else Outcome.UNKNOWN, message)
    message = message_withdraw_apply(
        account=account,
        original_external_id=item.revoke_of or item.external_id,
        revoked=bool(item.revoke_of),
    )
    return StoredMessage(Outcome.DELETED if message else Outcome.UNKNOWN, message)


def inbound_item_apply(*, account: ChannelAccount, item: InboundMessage) -> StoredMessage:
    """Dispatch one parsed message: edit, revoke or unsend, echo, or customer message (not enqueued)."""
    if (
        not item.external_id
        or not item.contact_external_id
        or len(item.external_id) > EXTERNAL_ID_MAX
        or len(item.contact_external_id) > CONTACT_ID_MAX
        or (item.identity is not None and len(item.identity.phone) > PHONE_MAX)
    ):
        return StoredMessage(Outcome.INVALID)
    item = _clean_ids(item)
    if item.is_deleted or item.edit_of or item.revoke_of:
        return _changed_apply(account=account, item=item)
    if item.is_echo:
        return _echo_apply(account=account, item=item)
    return inbound_message_store(account=account, item=item, enqueue=False)


def _clean_ids(item: InboundMessage) -> InboundMessage:
    external_id, contact = clean_str(item.external_id), clean_str(item.contact_external_id)
    if (external_id, contact) == (item.external_id, item.contact_external_id):
        return item
    return replace(item, external_id=external_id, contact_external_id=contact)


# Receipts
