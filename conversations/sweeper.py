"""Re-enqueue work that a lost task left behind.

The database is the source of truth: a Redis restart can drop queued tasks and
a killed worker can leave a message mid-turn. Run every SWEEPER_INTERVAL_SECONDS
(Celery beat) and by `manage.py sweep_messages`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from channels_app.models import WebhookEvent, WebhookEventStatus
from conversations import task_queue
from conversations.models import Author, Direction, Message, MessageStatus
from conversations.staff_flags import conversation_flag_for_staff

logger = logging.getLogger(__name__)

BATCH = 500


def messages_sweep() -> dict[str, int]:
    now = timezone.now()
    stuck_after = timedelta(seconds=settings.SWEEPER_STUCK_AFTER_SECONDS)
    # A send claimed this long ago without an outcome: the worker died mid-call.
    # Meta may or may not have the message; sending again could duplicate it.
    unknown_after = timedelta(seconds=settings.SWEEPER_SENDING_UNKNOWN_AFTER_SECONDS)
    # Each re-enqueue stamps status_changed_at, so a backlog is re-enqueued at most
    # once per threshold instead of piling up copies on every sweep.
    not_recently = Q(status_changed_at__isnull=True) | Q(status_changed_at__lt=now - stuck_after)
    stuck_inbound = (
        Message.objects.filter(
            direction=Direction.IN,
            author=Author.CUSTOMER,
            status__in=(MessageStatus.RECEIVED, MessageStatus.PROCESSING),
            created_at__lt=now - stuck_after,
        )
        .filter(not_recently)
        .filter(Q(conversation__turn_lease_until__isnull=True) | Q(conversation__turn_lease_until__lt=now))
    )
    conversation_ids = set(stuck_inbound.values_list("conversation_id", flat=True)[:BATCH])
    if conversation_ids:
        stuck_inbound.filter(conversation_id__in=conversation_ids).update(status_changed_at=now)
    for conversation_id in conversation_ids:
        task_queue.enqueue(task_queue.PROCESS_CONVERSATION, str(conversation_id))

    queued_after = timedelta(seconds=settings.SWEEPER_QUEUED_AFTER_SECONDS)
    queued = list(
        Message.objects.filter(
            direction=Direction.OUT,
            status=MessageStatus.QUEUED,
            status_changed_at__lt=now - queued_after,
        ).values_list("pk", flat=True)[:BATCH]
    )
    Message.objects.filter(pk__in=queued, status=MessageStatus.QUEUED).update(status_changed_at=now)
    for message_id in queued:
        task_queue.enqueue(task_queue.SEND_MESSAGE, str(message_id))

    unknown = list(
        Message.objects.filter(
            direction=Direction.OUT,
            status=MessageStatus.SENDING,
            status_changed_at__lt=now - unknown_after,
        ).values_list("pk", "conversation_id")[:BATCH]
    )
    for message_id, conversation_id in unknown:
        updated = Message.objects.filter(pk=message_id, status=MessageStatus.SENDING).update(
            status=MessageStatus.FAILED,
            error="The send was interrupted; not retried automatically to avoid a duplicate.",
            status_changed_at=now,
        )
        if updated:
            conversation_flag_for_staff(
                conversation_id=conversation_id, reason="A reply may not have been delivered."
            )
    events = _events_sweep(now)
    counts = {
        "events": events,
        "conversations": len(conversation_ids),
        "queued": len(queued),
        "unknown": len(unknown),
    }
    if any(counts.values()):
        logger.info("sweeper re-enqueued work", extra=counts)
    return counts


def _events_sweep(now) -> int:
    """Webhook events stored but not applied after SWEEPER_EVENT_AFTER_SECONDS: their task was lost.

    A worker killed mid-apply rolled the apply back, so the event is still
    `received`. Re-enqueueing stamps `updated_at`, so a backlog is re-enqueued
    at most once per threshold; a duplicate task is a no-op (webhook_event_apply).
    """
    after = timedelta(seconds=settings.SWEEPER_EVENT_AFTER_SECONDS)
    event_ids = list(
        WebhookEvent.objects.filter(status=WebhookEventStatus.RECEIVED, updated_at__lt=now - after)
        .order_by("created_at")
        .values_list("pk", flat=True)[:BATCH]
    )
    WebhookEvent.objects.filter(pk__in=event_ids, status=WebhookEventStatus.RECEIVED).update(updated_at=now)
    for event_id in event_ids:
        task_queue.enqueue(task_queue.APPLY_WEBHOOK_EVENT, str(event_id))
    return len(event_ids)
