"""One AI turn per conversation at a time: claim, gate, run the pipeline, reply.

A turn holds a lease on the conversation row, claimed with a conditional
UPDATE (works the same on PostgreSQL and SQLite, holds no transaction open
during LLM calls). The lease is short and a heartbeat renews it while the turn
runs, so a slow LLM never loses it and a killed worker's conversation is free
again within TURN_LEASE_SECONDS.
Messages that arrive while a turn runs, or within the business's burst window,
are answered together in the next turn.

A turn costs a fixed handful of queries, whatever the length of the
conversation: the lease (UPDATE … RETURNING the business), the conversation
with its business, channel account and contact and what is pending, the
messages it answers (claimed with UPDATE … RETURNING), the history; then, after
the LLM, one transaction writes the ledger rows, the conversation (with the
lease given back when nothing else is pending), the reply (stored claimed) and
the messages' statuses; the reply's send marks it sent. The business's stages,
templates, AI settings and agents come from the turn config cache
(`pipeline/context_reader.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import Case, F, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from businesses.models import AIControlSettings, Business
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
from conversations.pipeline.context_reader import TurnConfig, turn_config_get, turn_conversation_get
from conversations.pipeline.service import ledger_kept, turn_apply, turn_think
from conversations.staff_flags import conversation_flag_for_staff
from conversations.turn_lease import (
    PENDING_STATUSES,
    LeaseHeartbeat,
    db_value,
    lease_claim,
    lease_release,
    lease_release_when_idle,
    message_column,
    pending_sql,
)
from conversations.turn_slots import business_turn_slot
from icmp.returning import update_returning

logger = logging.getLogger(__name__)

# A message that failed this many processing attempts is given up and flagged.
MAX_PROCESS_ATTEMPTS = 3
# Turns taken in one task run before yielding to other conversations.
MAX_TURNS_PER_RUN = 5
# Customer messages answered by one turn, oldest first.
MAX_MESSAGES_PER_TURN = 50
# A turn over its business's share of the worker is tried again after this long.
BUSINESS_BUSY_RETRY_SECONDS = 1.0
# What a turn reads of the messages it claims (the rest stays deferred).
_CLAIMED_FIELDS = (
    "created_at",
    "business",
    "conversation",
    "channel_account",
    "direction",
    "author",
    "type",
    "text",
    "external_id",
    "status",
    "attempts",
)


@dataclass(frozen=True)
class TurnOutcome:
    """What a processing run did. `retry_in` asks the task to run again later."""

    status: str
    turns: int = 0
    retry_in: float | None = None


def _pending_messages(conversation_ref: Any) -> models.QuerySet[Message]:
    return Message.objects.filter(
        conversation_id=conversation_ref,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        status__in=PENDING_STATUSES,
    )


def _claim(conversation_id, *, quiet_since=None) -> list[Message]:
    """Mark the oldest pending messages processing (an attempt more) and read them: one UPDATE.

    `quiet_since`: claim only when no pending message is newer (the burst window is over).
    Messages past the attempts cap are given up here (a rare second UPDATE), as a turn would.
    """
    pending, params = pending_sql("%s", [db_value(Message, "conversation", conversation_id)])
    order = f"{message_column('created_at')}, {message_column('id')}"
    oldest = f"SELECT {message_column('id')} {pending} ORDER BY {order} LIMIT {MAX_MESSAGES_PER_TURN}"
    claimable = Message.objects.filter(id__in=RawSQL(oldest, params))  # noqa: S611
    if quiet_since is not None:
        newer = f"NOT EXISTS (SELECT 1 {pending} AND {message_column('created_at')} > %s)"
        since = db_value(Message, "created_at", quiet_since)
        claimable = claimable.filter(RawSQL(newer, [*params, since], output_field=models.BooleanField()))  # noqa: S611
    claimed = update_returning(
        claimable,
        returning=_CLAIMED_FIELDS,
        status=MessageStatus.PROCESSING,
        attempts=F("attempts") + 1,
        status_changed_at=timezone.now(),
    )
    given_up = [m for m in claimed if m.attempts > MAX_PROCESS_ATTEMPTS]
    if given_up:
        Message.objects.filter(pk__in=[m.pk for m in given_up]).update(
            status=MessageStatus.FAILED,
            attempts=F("attempts") - 1,  # this claim was no attempt
            error=f"Gave up after {MAX_PROCESS_ATTEMPTS} processing attempts.",
            status_changed_at=timezone.now(),
        )
        conversation_flag_for_staff(
            conversation_id=conversation_id, reason="A customer message could not be processed."
        )
    return sorted((m for m in claimed if m not in given_up), key=lambda m: (m.created_at, m.id))


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
    lease = lease_claim(conversation_id)
    if lease is None:
        if not Conversation.objects.filter(pk=conversation_id).exists():
            return TurnOutcome(status="gone")
        return TurnOutcome(status="busy", retry_in=2.0)
    released = False
    try:
        with business_turn_slot(lease.business_id) as free:
            if not free:
                # The business has its share of this worker's turns running: back in a moment.
                return TurnOutcome(status="business_busy", retry_in=BUSINESS_BUSY_RETRY_SECONDS)
            with LeaseHeartbeat(conversation_id, lease.token) as heartbeat:
                outcome, released = _turns_run(conversation_id, heartbeat, wait_for_burst=wait_for_burst)
                return outcome
    finally:
        if not released:
            lease_release(conversation_id, lease.token)


def _turns_run(
    conversation_id, heartbeat: LeaseHeartbeat, *, wait_for_burst: bool
) -> tuple[TurnOutcome, bool]:
    """The turns of one run, and whether the last one gave the lease back itself."""
    turns = 0
    while turns < MAX_TURNS_PER_RUN:
        try:
            conversation = turn_conversation_get(conversation_id=conversation_id)
        except Conversation.DoesNotExist:
            return TurnOutcome(status="gone", turns=turns), False
        config = turn_config_get(business=conversation.business)
        # The send of the reply reads the settings from the business (its WhatsApp window
        # template): cached on it, without touching the shared config.
        Business.ai_settings.related.set_cached_value(conversation.business, config.ai_settings)
        window = config.ai_settings.burst_window_seconds if config.ai_settings and wait_for_burst else 0
        now = timezone.now()
        pending = _claim(conversation.pk, quiet_since=now - timedelta(seconds=window) if window else None)
        if not pending:
            newest = (
                _pending_messages(conversation.pk)
                .order_by("-created_at")
                .values_list("created_at", flat=True)
            ).first()
            if newest is None:
                return TurnOutcome(status="done", turns=turns), False
            quiet_for = (now - newest).total_seconds()
            if window and quiet_for < window:
                return TurnOutcome(status="waiting", turns=turns, retry_in=window - quiet_for), False
            turns += 1  # messages given up: a turn, as before the claim
            continue
        released = _turn(conversation, pending, config, heartbeat)
        turns += 1
        if released:
            return TurnOutcome(status="done", turns=turns), True
    return TurnOutcome(status="more", turns=turns, retry_in=0.1), False


def _turn(
    conversation: Conversation, pending: list[Message], config: TurnConfig, heartbeat: LeaseHeartbeat
) -> bool:
    """One turn over claimed messages; True when it gave the lease back (nothing else was pending)."""
    reason = _gate_reason(conversation, config.ai_settings)
    if reason:
        _set_status(pending, MessageStatus.SKIPPED, reason)
        conversation_flag_for_staff(conversation_id=conversation.pk, reason=reason)
        logger.info("turn skipped", extra={"conversation_id": str(conversation.pk), "reason": reason})
        return False

    channel_typing_indicate_soon(conversation=conversation, last_message=pending[-1])
    return _ai_turn(conversation, pending, config, heartbeat)


def _ai_turn(
    conversation: Conversation, pending: list[Message], config: TurnConfig, heartbeat: LeaseHeartbeat
) -> bool:
    try:
        plan = turn_think(conversation=conversation, messages=pending, config=config)
    except LLMUnavailable as exc:
        # Nothing is lost: the messages stay visible as failed and are processed
        # again when staff resume the AI (conversation_reprocess).
        _set_status(pending, MessageStatus.FAILED, f"LLM unavailable: {exc}")
        _handoff(conversation, config, reason=f"The LLM failed: {exc}")
        return False
    if plan.refused is not None:
        _refused(conversation, pending, config, reason=plan.refused)
        return False

    # The turn's one transaction gives the lease back when no other customer message is
    # pending (the heartbeat then stops quietly); the reply is stored claimed and sent
    # from memory right after commit.
    updates = lease_release_when_idle(pending_ids=[m.pk for m in pending])
    if plan.draft.reply_text:
        updates["last_message_at"] = Case(
            When(ai_mode=AIMode.PAUSED, then=F("last_message_at")), default=Value(timezone.now())
        )
    heartbeat.releasing = True
    with ledger_kept(plan), transaction.atomic():
        result = turn_apply(conversation=conversation, plan=plan, updates=updates)
        if conversation.ai_mode == AIMode.PAUSED:
            # Staff took over while the reply was being written: do not send it.
            _set_status(pending, MessageStatus.SKIPPED, "The AI was paused during the turn.")
        else:
            if result.reply_text:
                message_outbound_create(
                    conversation=conversation,
                    author=Author.AI,
                    text=result.reply_text,
                    quick_replies=result.quick_replies,
                    stage=result.stage,
                    announces_handoff=bool(result.handoff_reason),
                    send_inline=True,
                    touch_conversation=False,
                )
            _set_status(pending, MessageStatus.ANSWERED)
            reason = result.handoff_reason or ("" if result.reply_text else "The model returned no reply.")
            if reason:
                _handoff(conversation, config, reason=reason)
    released = conversation.turn_lease_token is None
    heartbeat.releasing = released
    return released


def _refused(conversation: Conversation, pending: list[Message], config: TurnConfig, *, reason: str) -> None:
    """No model call (a budget is spent): the messages count as seen and staff take over."""
    with transaction.atomic():
        ai_mode = (
            Conversation.objects.select_for_update()
            .filter(pk=conversation.pk)
            .values_list("ai_mode", flat=True)
        )
        if ai_mode.first() == AIMode.PAUSED:
            _set_status(pending, MessageStatus.SKIPPED, "The AI was paused during the turn.")
            return
        _set_status(pending, MessageStatus.ANSWERED)
        _handoff(conversation, config, reason=reason)


def _handoff(conversation: Conversation, config: TurnConfig, *, reason: str) -> None:
    """Pause the AI, flag for staff, and send the holding message once per handoff."""
    with transaction.atomic():
        conversation_flag_for_staff(conversation_id=conversation.pk, reason=reason, pause_ai=True)
        holding = (config.ai_settings.fallback_text if config.ai_settings else "").strip()
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
