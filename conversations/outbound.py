"""Outbound messages: stored first, then sent by a task that claims the row.

The row exists (status `queued`) before any HTTP call. `message_send` claims it
with a conditional UPDATE (queued → sending), so a redelivered or retried task
never sends a message twice after a recorded success. A turn's reply is stored
already claimed (`sending`) in the turn's own transaction, which has just
checked under the conversation's row lock that the AI is not paused, and is
sent by this process right after commit, from memory: one query, the mark. Transient provider
errors put it back to `queued` for a retry with capped exponential backoff;
permanent ones mark it failed with Meta's code and text and flag the
conversation for staff.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from channels_app.adapters import get_adapter
from channels_app.adapters.base import (
    ChannelCredentials,
    OutboundContent,
    QuickReply,
    ReplyDraft,
    SendError,
    TemplateMessage,
)
from channels_app.models import ChannelAccount, ChannelKind
from conversations import task_queue
from conversations.models import (
    PARTS_PENDING,
    AIMode,
    Author,
    Conversation,
    Direction,
    Message,
    MessageStatus,
    MessageType,
)
from conversations.staff_flags import conversation_flag_for_staff
from icmp.db import connections_release

logger = logging.getLogger(__name__)

MAX_SEND_ATTEMPTS = 6
BACKOFF_BASE_SECONDS = 2.0
# Meta's longest suggested wait (rate limits: 60 s). Not above BROKER_MAX_COUNTDOWN_SECONDS,
# which caps countdowns below the broker's visibility timeout (icmp/settings.py).
BACKOFF_MAX_SECONDS = 60.0


@dataclass(frozen=True)
class SendOutcome:
    status: str
    retry_in: float | None = None


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * (2 ** max(0, attempt - 1)))
    if retry_after:
        delay = min(BACKOFF_MAX_SECONDS, max(delay, retry_after))
    return delay


def message_outbound_create(
    *,
    conversation: Conversation,
    author: str,
    text: str,
    quick_replies: list[str] | None = None,
    sent_by=None,
    stage=None,
    announces_handoff: bool = False,
    enqueue: bool = True,
    send_inline: bool = False,
    touch_conversation: bool = True,
) -> Message:
    """Store an outbound message (queued) and send it after the transaction commits.

    `announces_handoff` marks the AI's last reply of a turn that hands the
    conversation to staff: it is sent although that handoff pauses the AI.
    `send_inline` sends right after commit in this process (a turn's reply: no
    second trip through the broker): the row is stored claimed (`sending`), so
    call it in the transaction that checked the AI is not paused, with
    `conversation` read with its channel account, contact and business (and the
    business's `ai_settings` set); the send task stays the retry path.
    `touch_conversation=False`: the caller sets `last_message_at` itself.
    """
    now = timezone.now()
    payload: dict[str, Any] = {}
    if announces_handoff:
        payload["announces_handoff"] = True
    if quick_replies:
        payload["quick_replies"] = [str(q) for q in quick_replies]
    message = Message.objects.create(
        business_id=conversation.business_id,
        conversation=conversation,
        channel_account_id=conversation.channel_account_id,
        direction=Direction.OUT,
        author=author,
        type=MessageType.TEXT,
        text=text,
        payload=payload,
        # A reply sent inline is claimed by this process as it is stored.
        status=MessageStatus.SENDING if send_inline else MessageStatus.QUEUED,
        attempts=1 if send_inline else 0,
        status_changed_at=now,
        sent_by=sent_by,
        stage=stage,
    )
    if touch_conversation:
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now)
    if send_inline:
        message.conversation, message.channel_account = conversation, conversation.channel_account
        transaction.on_commit(lambda: message_send_claimed(message=message))
    elif enqueue:
        message_send_enqueue(message_id=message.pk)
    return message


def message_send_claimed(*, message: Message) -> SendOutcome:
    """Send a reply this process stored claimed, once committed; a transient failure
    schedules the send task to retry (as the task itself would)."""
    outcome = message_send(message_id=message.pk, claimed=message)
    if outcome.retry_in is not None and not task_queue.runs_in_request():
        task_queue.enqueue_now(task_queue.SEND_MESSAGE, str(message.pk), countdown=outcome.retry_in)
    return outcome


def message_send_enqueue(*, message_id, countdown: float | None = None) -> None:
    task_queue.enqueue(task_queue.SEND_MESSAGE, str(message_id), countdown=countdown)


def _content_for(message: Message, account: ChannelAccount, conversation: Conversation) -> OutboundContent:
    """What to send: the channel's adapter applies its messaging window (adapters/windows.py)."""
    ai_settings = getattr(conversation.business, "ai_settings", None)
    template_name = ai_settings.whatsapp_window_template if ai_settings else ""
    last_inbound = conversation.last_inbound_at
    draft = ReplyDraft(
        text=message.text,
        quick_replies=[
            QuickReply(id=f"qr{i}", title=title)
            for i, title in enumerate(message.payload.get("quick_replies", []), start=1)
        ],
        callback_data=str(message.pk),
        from_staff=message.author == Author.STAFF,
        since_customer=timezone.now() - last_inbound if last_inbound else None,
        window_template=(
            TemplateMessage(name=template_name, language=ai_settings.whatsapp_window_template_language)
            if template_name
            else None
        ),
    )
    return get_adapter(account.kind).compose(draft)


def _mark(message_id, *, from_status: str | None = None, **fields: Any) -> int:
    qs = Message.objects.filter(pk=message_id)
    if from_status:
        qs = qs.filter(status=from_status)
    return qs.update(status_changed_at=timezone.now(), **fields)


def message_send(*, message_id, claimed: Message | None = None) -> SendOutcome:
    """Claim and send one outbound message. Returns what happened (and when to retry).

    `claimed`: the message as this process stored it, already claimed (`send_inline`).
    """
    if claimed is None:
        taken = _mark(
            message_id,
            from_status=MessageStatus.QUEUED,
            status=MessageStatus.SENDING,
            attempts=F("attempts") + 1,
        )
        if not taken:
            return SendOutcome(status="not_claimed")
        # Read after the claim: the conversation's AI mode as it is now.
        message = Message.objects.select_related(
            "conversation__contact", "conversation__business__ai_settings", "channel_account"
        ).get(pk=message_id)
        # A staff takeover after the reply was written makes the AI's reply obsolete.
        if (
            message.author == Author.AI
            and not message.payload.get("announces_handoff")
            and message.conversation.ai_mode == AIMode.PAUSED
        ):
            _mark(
                message_id,
                status=MessageStatus.CANCELLED,
                error="Not sent: the AI was paused before sending.",
            )
            return SendOutcome(status=MessageStatus.CANCELLED)
    else:
        message = claimed
    conversation = message.conversation
    account = message.channel_account

    if not account.is_active:
        return _fail(message, SendError("inactive", "The channel account is inactive.", permanent=True))
    if not conversation.contact.address:
        reason = "The customer cannot be reached: their number now belongs to someone else."
        return _fail(message, SendError("unreachable", reason, permanent=True))

    sent_before = list(message.payload.get("sent_part_ids") or [])
    try:
        content = replace(_content_for(message, account, conversation), parts_sent=len(sent_before))
        credentials = ChannelCredentials(external_id=account.external_id, access_token=account.access_token)
        connections_release()  # the Graph round trip holds no database connection
        results = get_adapter(account.kind).send(credentials, conversation.contact.address, content)
    except SendError as exc:
        return _handle_send_error(message, exc, sent_before=sent_before)

    ids = [part for part in (*sent_before, *(r.external_id for r in results)) if part]
    fields: dict[str, Any] = {"external_id": ids[0] if ids else None, "error": "", "error_code": ""}
    payload = {key: value for key, value in message.payload.items() if key != PARTS_PENDING}
    if len(ids) > 1:
        payload["part_ids"] = ids
    if payload != message.payload:
        fields["payload"] = payload
    # A receipt may already have moved the row past `sent` (it names our id in
    # biz_opaque_callback_data); then only record the provider id.
    if not _mark(message_id, from_status=MessageStatus.SENDING, status=MessageStatus.SENT, **fields):
        Message.objects.filter(pk=message_id).update(**fields)
    logger.info(
        "message sent",
        extra={
            "message_id": str(message_id),
            "conversation_id": str(conversation.pk),
            "channel": account.kind,
        },
    )
    return SendOutcome(status=MessageStatus.SENT)


def _handle_send_error(message: Message, exc: SendError, *, sent_before: list[str]) -> SendOutcome:
    requeue_from = [MessageStatus.SENDING]
    if exc.sent or sent_before:
        # Parts of a split reply reached the customer before the failure: a retry skips them,
        # and until then their receipts must not mark the whole message sent (receipts.py).
        sent = [*sent_before, *(r.external_id or "" for r in exc.sent)]
        message.payload = {**message.payload, "sent_part_ids": sent, PARTS_PENDING: True}
        Message.objects.filter(pk=message.pk).update(payload=message.payload)
        # A receipt for an early part may have moved the row on during this attempt.
        requeue_from += [MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ]
    if exc.needs_reauth:
        ChannelAccount.objects.filter(pk=message.channel_account_id).update(needs_reauth=True)
    attempts = message.attempts + 1
    if exc.transient and attempts < MAX_SEND_ATTEMPTS:
        delay = backoff_seconds(attempts, exc.retry_after)
        Message.objects.filter(pk=message.pk, status__in=requeue_from).update(
            status_changed_at=timezone.now(),
            status=MessageStatus.QUEUED,
            error_code=str(exc.code)[:32],
            error=f"Retrying in {delay:.0f} s: {exc.message}"[:2000],
        )
        logger.warning(
            "send failed, will retry",
            extra={"message_id": str(message.pk), "code": exc.code, "retry_in": delay},
        )
        return SendOutcome(status=MessageStatus.QUEUED, retry_in=delay)
    return _fail(message, exc)


def _fail(message: Message, exc: SendError) -> SendOutcome:
    _mark(
        message.pk,
        status=MessageStatus.FAILED,
        error_code=str(exc.code)[:32],
        error=exc.message[:2000],
    )
    conversation_flag_for_staff(
        conversation_id=message.conversation_id,
        reason=f"A reply could not be sent ({exc.code}): {exc.message}",
    )
    logger.warning("send failed permanently", extra={"message_id": str(message.pk), "code": exc.code})
    return SendOutcome(status=MessageStatus.FAILED)


# The threads that send typing indicators: kept, so each keeps its HTTP session (and its
# connection to Meta) from one turn to the next instead of opening a new one per turn.
_TYPING_THREADS = 4
# An indicator that waited this long for a thread is dropped: it would show after the reply.
TYPING_STALE_SECONDS = 2.0
_typing_pool: tuple[int, ThreadPoolExecutor] | None = None
_typing_pool_lock = threading.Lock()


def _typing_threads() -> ThreadPoolExecutor:
    """This process's pool (a forked worker child makes its own: threads do not survive a fork)."""
    global _typing_pool
    with _typing_pool_lock:
        if _typing_pool is None or _typing_pool[0] != os.getpid():
            pool = ThreadPoolExecutor(max_workers=_TYPING_THREADS, thread_name_prefix="typing-indicator")
            _typing_pool = (os.getpid(), pool)
        return _typing_pool[1]


def channel_typing_indicate_soon(*, conversation: Conversation, last_message: Message | None) -> None:
    """The read receipt and typing indicator without waiting for them: against Meta
    they cost a round trip that would otherwise delay the first LLM request.
    Everything is read here; the pool's thread only makes the HTTP call (no database)."""
    call = _typing_call(conversation, last_message)
    if call is not None:
        _typing_threads().submit(_acknowledge_unless_stale, time.monotonic() + TYPING_STALE_SECONDS, call)


def _acknowledge_unless_stale(deadline: float, call: tuple) -> None:
    if time.monotonic() <= deadline:
        _acknowledge(*call)


def channel_typing_indicate(*, conversation: Conversation, last_message: Message | None) -> None:
    """Mark the customer's message read and show typing; best effort, never raises."""
    call = _typing_call(conversation, last_message)
    if call is not None:
        _acknowledge(*call)


def _typing_call(conversation: Conversation, last_message: Message | None) -> tuple | None:
    account = conversation.channel_account
    if account.kind == ChannelKind.API or not account.access_token or not conversation.contact.address:
        return None
    credentials = ChannelCredentials(external_id=account.external_id, access_token=account.access_token)
    message_id = (last_message.external_id or "") if last_message else ""
    return account.kind, credentials, conversation.contact.address, message_id, str(conversation.pk)


def _acknowledge(
    kind: str, credentials: ChannelCredentials, recipient: str, message_id: str, conversation_id: str
) -> None:
    try:
        get_adapter(kind).acknowledge(credentials, recipient=recipient, message_id=message_id)
    except SendError as exc:
        logger.info(
            "typing indicator not shown", extra={"code": exc.code, "conversation_id": conversation_id}
        )
    except Exception:  # a background nicety must never take a worker thread down loudly
        logger.warning("typing indicator failed", extra={"conversation_id": conversation_id}, exc_info=True)
