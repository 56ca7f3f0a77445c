"""Inbound: webhook events in, every message stored once, processing enqueued after commit.

Meta delivers at least once: it retries for up to 7 days and may deliver the
same payload concurrently (docs/meta-platform.md §6.1). The channel's message
id is unique per channel account, so a redelivery inserts nothing and
enqueues nothing. The raw body is stored in the same transaction as its
effects; a bug while applying them rolls back only the effects, and the event
stays `failed` for `manage.py replay_webhooks`.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from businesses.models import Agent
from channels_app.adapters import get_adapter
from channels_app.adapters.base import DeliveryStatus, InboundMessage, StatusUpdate
from channels_app.models import ChannelAccount, WebhookEvent, WebhookEventStatus
from conversations import turns
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
from conversations.outbound import message_outbound_create
from conversations.services import conversation_ai_pause
from stages.selectors import stage_initial_get

logger = logging.getLogger(__name__)

ERROR_MAX = 2000
NOTES_SHOWN = 20
# Column sizes: an id longer than its column is a malformed item, not a crash.
EXTERNAL_ID_MAX = 255
CONTACT_ID_MAX = 128
CONTACT_NAME_MAX = 200

REACTION_SKIPPED = "Reactions are not answered."
STANDBY_SKIPPED = "Another app controls this thread (standby)."
UNSENT_SKIPPED = "The customer unsent this message."
ECHO_PAUSE_REASON = "Staff replied from the Meta inbox"
STAFF_REPLY_PAUSE_REASON = "Staff replied"

# Receipts only move forward: queued/sending < sent < delivered < read; failed
# may follow anything before read. Meta delivers statuses out of order (§6.1).
_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.DELIVERED: 2,
    MessageStatus.READ: 3,
}
_RECEIPT_STATUS = {
    DeliveryStatus.SENT: MessageStatus.SENT,
    DeliveryStatus.DELIVERED: MessageStatus.DELIVERED,
    DeliveryStatus.READ: MessageStatus.READ,
    DeliveryStatus.FAILED: MessageStatus.FAILED,
}


def _moves_from(new: str) -> list[str]:
    if new == MessageStatus.FAILED:
        return [MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT, MessageStatus.DELIVERED]
    return [status for status, rank in _RANK.items() if rank < _RANK[new]]


class Outcome(StrEnum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    ECHO_OURS = "echo_ours"
    ECHO_STAFF = "echo_staff"
    DELETED = "deleted"
    UNKNOWN = "unknown"
    INVALID = "invalid"


@dataclass(frozen=True)
class StoredMessage:
    """What storing one item did, and the row it concerns (if any)."""

    outcome: Outcome
    message: Message | None = None


# Cleaning: PostgreSQL rejects NUL characters in text and jsonb, and lone
# surrogates (legal as JSON escapes) cannot be encoded as UTF-8.


def _clean_str(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, dict):
        return {_clean_str(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


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


def contact_upsert(*, account: ChannelAccount, external_id: str, name: str = "") -> Contact:
    """The account's contact with that id, created on first contact; a non-empty profile name refreshes it."""
    name = _clean_str(name or "").strip()[:CONTACT_NAME_MAX]
    contact = Contact.objects.filter(channel_account=account, external_id=external_id).first()
    if contact is None:
        try:
            with transaction.atomic():
                return Contact.objects.create(
                    business_id=account.business_id,
                    channel_account=account,
                    external_id=external_id,
                    name=name,
                )
        except IntegrityError:  # a concurrent delivery created it first
            contact = Contact.objects.get(channel_account=account, external_id=external_id)
    if name and contact.name != name:
        Contact.objects.filter(pk=contact.pk).update(name=name, updated_at=timezone.now())
        contact.name = name
    return contact


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
    Conversation.objects.filter(pk=conversation_id, last_message_at__lt=at).update(last_message_at=at)
    if inbound:
        Conversation.objects.filter(pk=conversation_id).filter(
            Q(last_inbound_at__isnull=True) | Q(last_inbound_at__lt=at)
        ).update(last_inbound_at=at)


def _message_fields(item: InboundMessage) -> dict[str, Any]:
    mtype = item.type.value if item.type.value in MessageType.values else MessageType.UNSUPPORTED
    reply_to = _clean_str(item.reply_to_external_id or "")
    return {
        "type": mtype,
        "text": _clean_str(item.text),
        "payload": _clean(dict(item.payload)),
        "raw": _clean(item.raw) if isinstance(item.raw, dict) else {},
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
    contact = contact_upsert(account=account, external_id=item.contact_external_id, name=item.contact_name)
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
    contact = contact_upsert(account=account, external_id=item.contact_external_id)
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


def _deleted_apply(*, account: ChannelAccount, item: InboundMessage) -> StoredMessage:
    """Instagram unsend: the stored row loses its text; no new row is inserted."""
    message = _existing(account, item.external_id)
    if message is None:
        return StoredMessage(Outcome.UNKNOWN)
    payload = message.payload if isinstance(message.payload, dict) else {}
    message.text = ""
    message.payload = {**payload, "deleted": True}
    message.save(update_fields=["text", "payload", "updated_at"])
    Message.objects.filter(pk=message.pk, status=MessageStatus.RECEIVED).update(
        status=MessageStatus.SKIPPED, error=UNSENT_SKIPPED, status_changed_at=timezone.now()
    )
    return StoredMessage(Outcome.DELETED, message)


def inbound_item_apply(*, account: ChannelAccount, item: InboundMessage) -> StoredMessage:
    """Dispatch one parsed message: unsent, echo or customer message (the latter not enqueued)."""
    if (
        not item.external_id
        or not item.contact_external_id
        or len(item.external_id) > EXTERNAL_ID_MAX
        or len(item.contact_external_id) > CONTACT_ID_MAX
    ):
        return StoredMessage(Outcome.INVALID)
    item = _clean_ids(item)
    if item.is_deleted:
        return _deleted_apply(account=account, item=item)
    if item.is_echo:
        return _echo_apply(account=account, item=item)
    return inbound_message_store(account=account, item=item, enqueue=False)


def _clean_ids(item: InboundMessage) -> InboundMessage:
    external_id, contact = _clean_str(item.external_id), _clean_str(item.contact_external_id)
    if (external_id, contact) == (item.external_id, item.contact_external_id):
        return item
    return replace(item, external_id=external_id, contact_external_id=contact)


# Receipts


def _callback_message_id(update: StatusUpdate) -> uuid.UUID | None:
    # Our sender puts the message id in biz_opaque_callback_data, which WhatsApp
    # echoes on every status: a receipt that beats the send response still
    # finds its row (which has no external id yet).
    try:
        return uuid.UUID(update.callback_data) if update.callback_data else None
    except (TypeError, ValueError):
        return None


def status_update_apply(*, account: ChannelAccount, update: StatusUpdate) -> int | None:
    """Move the outbound message(s) a receipt names forward; None when it names none of ours."""
    new = _RECEIPT_STATUS[update.status]
    conditions = []
    if update.external_id:
        conditions.append(Q(external_id=_clean_str(update.external_id)))
    message_id = _callback_message_id(update)
    if message_id is not None:
        conditions.append(Q(pk=message_id))
    if update.watermark is not None and update.contact_external_id:
        # Messenger: "everything sent to this person before the watermark".
        conditions.append(
            Q(
                conversation__contact__external_id=_clean_str(update.contact_external_id),
                created_at__lte=update.watermark,
            )
        )
    if not conditions:
        return None
    candidates = Message.objects.filter(channel_account=account, direction=Direction.OUT).filter(
        reduce(or_, conditions)
    )
    movable = _moves_from(new)
    rows = list(candidates.filter(status__in=movable).values_list("pk", "conversation_id"))
    if not rows:
        return 0 if candidates.exists() else None
    fields: dict[str, Any] = {"status": new, "status_changed_at": timezone.now()}
    if new == MessageStatus.FAILED:
        code = "" if update.error_code is None else str(update.error_code)
        text = ": ".join(p for p in (update.error_title, update.error_message) if p) or "Delivery failed."
        fields.update(error_code=code[:32], error=_clean_str(text)[:ERROR_MAX])
    moved = Message.objects.filter(pk__in=[pk for pk, _ in rows], status__in=movable).update(**fields)
    if new == MessageStatus.FAILED and moved:
        title = update.error_title or update.error_message or "delivery failed"
        for conversation_id in {conversation_id for _, conversation_id in rows}:
            turns.conversation_flag_for_staff(
                conversation_id=conversation_id,
                reason=_clean_str(
                    f"A message could not be delivered ({fields['error_code'] or '?'}): {title}"
                ),
            )
    return moved


# Webhook events


@dataclass
class _Applied:
    routed: int = 0
    unrouted: int = 0
    first_account: ChannelAccount | None = None
    notes: list[str] = field(default_factory=list)
    to_process: dict[uuid.UUID, None] = field(default_factory=dict)

    def summary(self) -> str:
        if not self.notes:
            return ""
        shown = self.notes[:NOTES_SHOWN]
        more = len(self.notes) - len(shown)
        return _clean_str("\n".join(shown) + (f"\n… and {more} more" if more > 0 else ""))[:ERROR_MAX]


class _Router:
    """Routing ids → active channel accounts of this channel, optionally limited to one account."""

    def __init__(self, *, channel: str, routing_ids: set[str], scope: ChannelAccount | None) -> None:
        self.scope = scope
        if scope is not None:
            routing_ids &= {scope.external_id}
        accounts = ChannelAccount.objects.filter(
            kind=channel, external_id__in=routing_ids, is_active=True
        ).select_related("business")
        self.accounts = {account.external_id: account for account in accounts}

    def route(self, applied: _Applied, routing_id: str, what: str) -> ChannelAccount | None:
        if self.scope is not None and routing_id != self.scope.external_id:
            # A per-account secret must not let anyone write into another account.
            applied.notes.append(f"{what}: ignored, addressed to another account ({routing_id!r})")
            logger.warning("webhook item for another account ignored", extra={"routing_id": routing_id})
            return None
        account = self.accounts.get(routing_id)
        if account is None:
            applied.unrouted += 1
            applied.notes.append(f"{what}: no active account for {routing_id!r}")
            logger.warning("webhook item routes to no active account", extra={"routing_id": routing_id})
            return None
        applied.routed += 1
        if applied.first_account is None:
            applied.first_account = account
        return account


def _apply(*, channel: str, payload: Any, scope: ChannelAccount | None) -> _Applied:
    batch = get_adapter(channel).parse(payload)
    applied = _Applied(notes=[f"problem: {problem}" for problem in batch.problems])
    routing_ids = {
        item.routing_id for item in (*batch.messages, *batch.statuses, *batch.errors) if item.routing_id
    }
    router = _Router(channel=channel, routing_ids=routing_ids, scope=scope)

    for item in batch.messages:
        account = router.route(applied, item.routing_id, f"message {item.external_id[:80]!r}")
        if account is None:
            continue
        stored = inbound_item_apply(account=account, item=item)
        if stored.outcome in (Outcome.INVALID, Outcome.UNKNOWN):
            applied.notes.append(f"message {item.external_id[:80]!r}: {stored.outcome}")
        elif stored.outcome == Outcome.STORED and stored.message.status == MessageStatus.RECEIVED:
            applied.to_process[stored.message.conversation_id] = None

    for update in batch.statuses:
        account = router.route(applied, update.routing_id, f"status {update.external_id or 'watermark'!r}")
        if account is None or status_update_apply(account=account, update=update) is not None:
            continue
        if update.external_id:  # a watermark that covers none of our messages is normal
            applied.notes.append(f"status {update.status} for an unknown message {update.external_id!r}")
            logger.info(
                "receipt for an unknown message ignored",
                extra={"channel_account_id": str(account.pk), "external_id": update.external_id},
            )

    for error in batch.errors:
        account = router.route(applied, error.routing_id, f"error {error.code}")
        if account is not None:
            applied.notes.append(
                f"channel error {error.code}: {error.title or error.message} {error.details}"
            )
            logger.warning(
                "channel reported an error",
                extra={"channel_account_id": str(account.pk), "code": error.code, "title": error.title},
            )

    # One processing run per conversation, however many of its messages the batch carried.
    for conversation_id in applied.to_process:
        turns.conversation_process_enqueue(conversation_id=conversation_id)
    return applied


def parse_json(text: str) -> Any:
    """Strict JSON: NaN and Infinity are not JSON and PostgreSQL's jsonb refuses them."""

    def reject(constant: str) -> Any:
        raise ValueError(f"{constant} is not valid JSON")

    return json.loads(text, parse_constant=reject)


def _event_apply(event: WebhookEvent, *, payload: Any, scope: ChannelAccount | None) -> WebhookEvent:
    try:
        # Effects in a savepoint: a bug costs the effects, never the stored event.
        with transaction.atomic():
            if payload is None:
                payload = parse_json(event.body)
            applied = _apply(channel=event.channel, payload=payload, scope=scope)
    except Exception as exc:
        logger.exception(
            "webhook event could not be applied",
            extra={"webhook_event_id": str(event.pk), "channel": event.channel},
        )
        event.status = WebhookEventStatus.FAILED
        event.error = _clean_str(f"{type(exc).__name__}: {exc}")[:ERROR_MAX]
        event.processed_at = None
    else:
        if applied.routed or not applied.unrouted:
            event.status = WebhookEventStatus.PROCESSED
            event.processed_at = timezone.now()
        else:
            event.status = WebhookEventStatus.UNROUTED
            event.processed_at = None
        if applied.first_account is not None and event.channel_account_id is None:
            event.channel_account = applied.first_account
            event.business_id = applied.first_account.business_id
        event.error = applied.summary()
    event.attempts += 1
    event.save(
        update_fields=[
            "status",
            "error",
            "processed_at",
            "attempts",
            "business",
            "channel_account",
            "updated_at",
        ]
    )
    logger.info(
        "webhook event applied",
        extra={"webhook_event_id": str(event.pk), "channel": event.channel, "status": event.status},
    )
    return event


def webhook_receive(
    *, channel: str, body: str, payload: Any, account: ChannelAccount | None = None
) -> WebhookEvent:
    """Record a signed webhook body and apply it, in one transaction.

    `account` is set for the per-account URL: only items addressed to it are
    applied, whatever else the body carries.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            channel=channel,
            body=body,
            business_id=account.business_id if account else None,
            channel_account=account,
        )
        return _event_apply(event, payload=payload, scope=account)


def webhook_event_replay(*, event_id: uuid.UUID) -> WebhookEvent:
    """Apply a stored event again, through the same path; duplicates are no-ops.

    An event that reached an account with its own app secret (the per-account
    URL) stays limited to that account's items.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        account = (
            ChannelAccount.objects.filter(pk=event.channel_account_id).select_related("business").first()
            if event.channel_account_id
            else None
        )
        scope = account if account is not None and account.app_secret else None
        return _event_apply(event, payload=None, scope=scope)


def webhook_events_for_replay(
    *, status: str | None = None, since: datetime | None = None, event_id: uuid.UUID | None = None
) -> QuerySet[WebhookEvent]:
    """Oldest first. Default: failed and unrouted; "all" includes processed ones."""
    events = WebhookEvent.objects.all()
    if event_id is not None:
        events = events.filter(pk=event_id)
    elif status in (None, ""):
        events = events.filter(status__in=[WebhookEventStatus.FAILED, WebhookEventStatus.UNROUTED])
    elif status != "all":
        events = events.filter(status=status)
    if since is not None:
        events = events.filter(created_at__gte=since)
    return events.order_by("created_at", "id")


# Staff replies


@transaction.atomic
def conversation_staff_reply(*, conversation: Conversation, text: str, user=None) -> Message:
    """A staff answer: queued now, sent after commit through the normal send path; the AI pauses."""
    message = message_outbound_create(conversation=conversation, author=Author.STAFF, text=text, sent_by=user)
    conversation_ai_pause(conversation=conversation, reason=STAFF_REPLY_PAUSE_REASON, by=user)
    return message
