"""One AI turn per conversation at a time: claim, gate, run the pipeline, reply.

A turn holds a lease on the conversation row, claimed with a conditional
UPDATE (works the same on PostgreSQL and SQLite, holds no transaction open
during LLM calls). The lease is short and a heartbeat renews it while the turn
runs, so a slow LLM never loses it and a killed worker's conversation is free
again within TURN_LEASE_SECONDS.
Messages that arrive while a turn runs, or within the business's burst window,
are answered together in the next turn.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from businesses.models import AIControlSettings
from conversations import task_queue
from conversations.llm.client import llm_configured
from conversations.llm.errors import LLMUnavailable
from conversations.models import (
    AIMode,
    Author,
    Conversation,
    Direction,
    Message,
    MessageStatus,
)
from conversations.outbound import channel_typing_indicate_soon, message_outbound_create
from conversations.pipeline.service import turn_run
from conversations.staff_flags import conversation_flag_for_staff
from conversations.turn_slots import business_turn_slot

logger = logging.getLogger(__name__)

# A message that failed this many processing attempts is given up and flagged.
MAX_PROCESS_ATTEMPTS = 3
# Turns taken in one task run before yielding to other conversations.
MAX_TURNS_PER_RUN = 5
PENDING_STATUSES = (MessageStatus.RECEIVED, MessageStatus.PROCESSING)
# A turn over its business's share of the worker is tried again after this long.
BUSINESS_BUSY_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class TurnOutcome:
    """What a processing run did. `retry_in` asks the task to run again later."""

    status: str
    turns: int = 0
    retry_in: float | None = None


def _lease_claim(conversation_id) -> uuid.UUID | None:
    token = uuid.uuid4()
    now = timezone.now()
    claimed = (
        Conversation.objects.filter(pk=conversation_id)
        .filter(Q(turn_lease_until__isnull=True) | Q(turn_lease_until__lt=now))
        .update(turn_lease_until=now + timedelta(seconds=settings.TURN_LEASE_SECONDS), turn_lease_token=token)
    )
    return token if claimed else None


class _LeaseHeartbeat:
    """Renews a turn's lease every TURN_LEASE_RENEW_SECONDS from a thread of its own.

    The thread touches the database only for the one UPDATE of each beat and
    gives its connection back at once; it stops when the turn ends or when the
    lease is no longer ours.
    """

    def __init__(self, conversation_id, token: uuid.UUID) -> None:
        self.conversation_id, self.token = conversation_id, token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="turn-lease-heartbeat", daemon=True)

    def __enter__(self) -> _LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(settings.TURN_LEASE_RENEW_SECONDS):
            try:
                renewed = Conversation.objects.filter(
                    pk=self.conversation_id, turn_lease_token=self.token
                ).update(turn_lease_until=timezone.now() + timedelta(seconds=settings.TURN_LEASE_SECONDS))
            except Exception:  # the database is away: the turn's own writes will say so
                logger.warning("turn lease not renewed", extra={"conversation_id": str(self.conversation_id)})
                renewed = 1
            finally:
                connection.close()
            if not renewed:
                logger.warning("turn lease lost", extra={"conversation_id": str(self.conversation_id)})
                return


def _lease_release(conversation_id, token: uuid.UUID) -> None:
    Conversation.objects.filter(pk=conversation_id, turn_lease_token=token).update(
        turn_lease_until=None, turn_lease_token=None
    )


def _pending(conversation_id) -> list[Message]:
    return list(
        Message.objects.filter(
            conversation_id=conversation_id,
            direction=Direction.IN,
            author=Author.CUSTOMER,
            status__in=PENDING_STATUSES,
        ).order_by("created_at", "id")[:50]
    )


def _gate_reason(conversation: Conversation, ai_settings: AIControlSettings | None) -> str | None:
    if not conversation.business.is_active:
        return "The business is inactive."
    if ai_settings is not None and not ai_settings.auto_reply_enabled:
        return "Auto-reply is off for this business."
    if conversation.ai_mode == AIMode.PAUSED:
        return "The AI is paused on this conversation."
    if not llm_configured():
        return "No LLM is configured (OPENAI_API_KEY / OPENAI_BASE_URL), so AI replies are off."
    return None


def _set_status(messages: list[Message], status: str, error: str = "") -> None:
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(
        status=status, error=error[:2000], status_changed_at=timezone.now()
    )


def conversation_turn_process(*, conversation_id, wait_for_burst: bool = True) -> TurnOutcome:
    """Answer the conversation's pending customer messages, one turn at a time.

    `wait_for_burst` is off in in-process mode, where nothing could run the
    turn later; there a webhook's whole batch is already stored before it runs.
    """
    business_id = (
        Conversation.objects.filter(pk=conversation_id).values_list("business_id", flat=True).first()
    )
    if business_id is None:
        return TurnOutcome(status="gone")
    with business_turn_slot(business_id) as free:
        if not free:
            # The business has its share of this worker's turns running: back in a moment.
            return TurnOutcome(status="business_busy", retry_in=BUSINESS_BUSY_RETRY_SECONDS)
        token = _lease_claim(conversation_id)
        if token is None:
            return TurnOutcome(status="busy", retry_in=2.0)
        try:
            with _LeaseHeartbeat(conversation_id, token):
                return _turns_run(conversation_id, wait_for_burst=wait_for_burst)
        finally:
            _lease_release(conversation_id, token)


def _turns_run(conversation_id, *, wait_for_burst: bool) -> TurnOutcome:
    turns = 0
    while turns < MAX_TURNS_PER_RUN:
        pending = _pending(conversation_id)
        if not pending:
            return TurnOutcome(status="done", turns=turns)
        conversation = Conversation.objects.select_related(
            "business", "channel_account", "contact", "stage", "agent"
        ).get(pk=conversation_id)
        ai_settings = AIControlSettings.objects.filter(business_id=conversation.business_id).first()
        window = ai_settings.burst_window_seconds if ai_settings else 0
        quiet_for = (timezone.now() - pending[-1].created_at).total_seconds()
        if wait_for_burst and window and quiet_for < window:
            return TurnOutcome(status="waiting", turns=turns, retry_in=window - quiet_for)
        _turn(conversation, pending, ai_settings)
        turns += 1
    return TurnOutcome(status="more", turns=turns, retry_in=0.1)


def _turn(conversation: Conversation, pending: list[Message], ai_settings: AIControlSettings | None) -> None:
    given_up = [m for m in pending if m.attempts >= MAX_PROCESS_ATTEMPTS]
    if given_up:
        _set_status(
            given_up, MessageStatus.FAILED, f"Gave up after {MAX_PROCESS_ATTEMPTS} processing attempts."
        )
        conversation_flag_for_staff(
            conversation_id=conversation.pk, reason="A customer message could not be processed."
        )
        pending = [m for m in pending if m not in given_up]
        if not pending:
            return
    Message.objects.filter(pk__in=[m.pk for m in pending]).update(
        status=MessageStatus.PROCESSING, attempts=F("attempts") + 1, status_changed_at=timezone.now()
    )

    reason = _gate_reason(conversation, ai_settings)
    if reason:
        _set_status(pending, MessageStatus.SKIPPED, reason)
        conversation_flag_for_staff(conversation_id=conversation.pk, reason=reason)
        logger.info("turn skipped", extra={"conversation_id": str(conversation.pk), "reason": reason})
        return

    channel_typing_indicate_soon(conversation=conversation, last_message=pending[-1])
    _ai_turn(conversation, pending, ai_settings)


def _ai_turn(
    conversation: Conversation, pending: list[Message], ai_settings: AIControlSettings | None
) -> None:
    try:
        result = turn_run(conversation=conversation, messages=pending)
    except LLMUnavailable as exc:
        # Nothing is lost: the messages stay visible as failed and are processed
        # again when staff resume the AI (conversation_reprocess).
        _set_status(pending, MessageStatus.FAILED, f"LLM unavailable: {exc}")
        _handoff(conversation, ai_settings, reason=f"The LLM failed: {exc}")
        return

    with transaction.atomic():
        fresh = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if fresh.ai_mode == AIMode.PAUSED:
            # Staff took over while the reply was being written: do not send it.
            _set_status(pending, MessageStatus.SKIPPED, "The AI was paused during the turn.")
            return
        if result.reply_text:
            message_outbound_create(
                conversation=fresh,
                author=Author.AI,
                text=result.reply_text,
                quick_replies=result.quick_replies,
                stage=result.stage,
                announces_handoff=bool(result.handoff_reason),
                send_inline=True,
            )
        _set_status(pending, MessageStatus.ANSWERED)
        reason = result.handoff_reason or ("" if result.reply_text else "The model returned no reply.")
        if reason:
            _handoff(fresh, ai_settings, reason=reason)


def _handoff(conversation: Conversation, ai_settings: AIControlSettings | None, *, reason: str) -> None:
    """Pause the AI, flag for staff, and send the holding message once per handoff."""
    with transaction.atomic():
        conversation_flag_for_staff(conversation_id=conversation.pk, reason=reason, pause_ai=True)
        holding = (ai_settings.fallback_text if ai_settings else "").strip()
        first_notice = Conversation.objects.filter(
            pk=conversation.pk, handoff_notified_at__isnull=True
        ).update(handoff_notified_at=timezone.now())
        if holding and first_notice:
            message_outbound_create(
                conversation=conversation, author=Author.SYSTEM, text=holding, send_inline=True
            )
    logger.info("conversation handed to staff", extra={"conversation_id": str(conversation.pk)})


def conversation_reprocess(*, conversation: Conversation) -> int:
    """Queue the conversation's failed and skipped customer messages since the last reply again.

    System messages (the holding message) do not count as a reply.
    """
    last_out = (
        Message.objects.filter(
            conversation=conversation, direction=Direction.OUT, author__in=(Author.AI, Author.STAFF)
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    qs = Message.objects.filter(
        conversation=conversation,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        status__in=(MessageStatus.FAILED, MessageStatus.SKIPPED),
    )
    if last_out:
        qs = qs.filter(created_at__gt=last_out)
    count = qs.update(status=MessageStatus.RECEIVED, attempts=0, error="", status_changed_at=timezone.now())
    if count:
        conversation_process_enqueue(conversation_id=conversation.pk)
    return count


def conversation_process_enqueue(*, conversation_id, countdown: float | None = None) -> None:
    task_queue.enqueue(task_queue.PROCESS_CONVERSATION, str(conversation_id), countdown=countdown)
