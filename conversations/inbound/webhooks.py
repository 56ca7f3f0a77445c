"""Webhook events: the door stores the raw body, a task applies it, replay re-applies it.

The stored event is the durable record. `webhook_event_store` is the door's
only write (one INSERT); the event is handed to a task after commit, and
`webhook_event_apply` normalises it (contacts, conversations, messages,
receipts) with the same idempotency as a redelivery: channel message ids are
unique, so applying an event twice stores nothing twice. The apply holds the
event's row lock (`SKIP LOCKED`), so a duplicate task skips an event another
worker is applying, and a worker killed mid-apply rolls back to `received`,
which the sweeper re-enqueues. A bug while applying leaves the event `failed`
for `manage.py replay_webhooks`; a failure that trying again can cure (the
database gone, a deadlock) is not recorded at all: the apply rolls back, the
event stays `received`, and the sweeper hands it to a worker again.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from channels_app.models import ChannelAccount, WebhookEvent, WebhookEventStatus
from conversations import task_queue
from conversations.inbound.batches import batch_apply, parts_save, pending_conversations_of
from conversations.inbound.cleaning import ERROR_MAX, clean_str, parse_json

logger = logging.getLogger(__name__)


@dataclass
class EventApplied:
    """What applying an event did: the event, and the conversations with new customer messages."""

    event: WebhookEvent | None
    conversation_ids: list[uuid.UUID] = field(default_factory=list)


def webhook_event_store(*, channel: str, body: str, account: ChannelAccount | None = None) -> WebhookEvent:
    """The door's one write: the signed raw body, handed to the apply task after commit.

    `account` is set for the per-account URL: only items addressed to it are
    applied, whatever else the body carries.
    """
    event = WebhookEvent(channel=channel, body=body, received_for=account)
    _insert(event)
    task_queue.enqueue(task_queue.APPLY_WEBHOOK_EVENT, str(event.pk))
    return event


def _insert(event: WebhookEvent) -> None:
    """One INSERT of every column, as `save()` would write it, without its machinery.

    The door's hot path: Model.save() (signals, the update-or-insert decision, the
    query compiler) was half the CPU of storing the event (bench_ingest's profile).
    """
    fields = WebhookEvent._meta.concrete_fields
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    params = [f.get_db_prep_save(f.pre_save(event, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(WebhookEvent._meta.db_table)} ({columns}) VALUES ({placeholders})",  # noqa: S608
            params,
        )
    event._state.adding = False


def _event_apply(event: WebhookEvent, *, scope: ChannelAccount | None) -> EventApplied:
    conversation_ids: list[uuid.UUID] = []
    try:
        # Effects in a savepoint: a bug costs the effects, never the stored event.
        with transaction.atomic():
            applied = batch_apply(channel=event.channel, payload=parse_json(event.body), scope=scope)
            parts_save(event, applied)
    except OperationalError:
        raise  # transient: the whole apply rolls back and the event stays received
    except Exception as exc:
        logger.exception(
            "webhook event could not be applied",
            extra={"webhook_event_id": str(event.pk), "channel": event.channel},
        )
        event.status = WebhookEventStatus.FAILED
        event.error = clean_str(f"{type(exc).__name__}: {exc}")[:ERROR_MAX]
        event.processed_at = None
    else:
        conversation_ids = applied.conversation_ids
        if applied.failures:
            event.status = WebhookEventStatus.FAILED
            event.processed_at = None
        elif applied.routed or not applied.unrouted:
            event.status = WebhookEventStatus.PROCESSED
            event.processed_at = timezone.now()
        else:
            event.status = WebhookEventStatus.UNROUTED
            event.processed_at = None
        event.error = applied.summary()
    event.attempts += 1
    event.save(update_fields=["status", "error", "processed_at", "attempts", "updated_at"])
    logger.info(
        "webhook event applied",
        extra={"webhook_event_id": str(event.pk), "channel": event.channel, "status": event.status},
    )
    return EventApplied(event=event, conversation_ids=conversation_ids)


def _scope(event: WebhookEvent) -> ChannelAccount | None:
    if not event.received_for_id:
        return None
    return ChannelAccount.objects.filter(pk=event.received_for_id).select_related("business").first()


def webhook_event_apply(*, event_id: Any) -> EventApplied:
    """Apply a stored event that no one has applied yet.

    Returns the conversations to process; the caller runs or enqueues their turns
    after this commits. An event another worker holds right now gives `event=None`.
    An event applied before (its task handed back after a worker died between the
    apply and the turn, or a sweeper copy) is not applied again: it gives the
    conversations whose messages from it still wait for a turn.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        if event is None:  # being applied by another worker right now (or gone)
            return EventApplied(event=None)
        if event.status != WebhookEventStatus.RECEIVED:
            return EventApplied(event=event, conversation_ids=pending_conversations_of(event))
        return _event_apply(event, scope=_scope(event))


def webhook_event_replay(*, event_id: uuid.UUID) -> WebhookEvent:
    """Apply a stored event again, through the same path; duplicates are no-ops.

    An event that came to an account's own URL stays limited to that account's items.
    Its conversations with new messages are enqueued for processing after commit.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        applied = _event_apply(event, scope=_scope(event))
        for conversation_id in applied.conversation_ids:
            task_queue.enqueue(task_queue.PROCESS_CONVERSATION, str(conversation_id))
        return event


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
