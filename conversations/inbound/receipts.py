"""Delivery receipts: they move our outbound messages forward, never back."""

from __future__ import annotations

import logging
import uuid
from functools import reduce
from operator import or_
from typing import Any

from django.db.models import Q
from django.utils import timezone

from channels_app.adapters.base import DeliveryStatus, StatusUpdate
from channels_app.models import ChannelAccount
from conversations.inbound.cleaning import ERROR_MAX, clean_str
from conversations.models import (
    PARTS_PENDING,
    Direction,
    Message,
    MessageStatus,
)
from conversations.staff_flags import conversation_flag_for_staff

logger = logging.getLogger(__name__)

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
        conditions.append(Q(external_id=clean_str(update.external_id)))
    message_id = _callback_message_id(update)
    if message_id is not None:
        conditions.append(Q(pk=message_id))
    if update.watermark is not None and update.contact_external_id:
        # Messenger: "everything sent to this person before the watermark".
        conditions.append(
            Q(
                conversation__contact__external_id=clean_str(update.contact_external_id),
                created_at__lte=update.watermark,
            )
        )
    if not conditions:
        return None
    candidates = Message.objects.filter(channel_account=account, direction=Direction.OUT).filter(
        reduce(or_, conditions)
    )
    movable = _moves_from(new)
    moving = candidates.filter(status__in=movable)
    if new != MessageStatus.FAILED:
        # A receipt for the parts of a split reply that arrived says nothing about the parts
        # still waiting for a retry: the message stays queued until they are sent.
        moving = moving.exclude(
            status__in=[MessageStatus.QUEUED, MessageStatus.SENDING], payload__has_key=PARTS_PENDING
        )
    rows = list(moving.values_list("pk", "conversation_id"))
    if not rows:
        return 0 if candidates.exists() else None
    fields: dict[str, Any] = {"status": new, "status_changed_at": timezone.now()}
    if new == MessageStatus.FAILED:
        code = "" if update.error_code is None else str(update.error_code)
        text = ": ".join(p for p in (update.error_title, update.error_message) if p) or "Delivery failed."
        fields.update(error_code=code[:32], error=clean_str(text)[:ERROR_MAX])
    moved = Message.objects.filter(pk__in=[pk for pk, _ in rows], status__in=movable).update(**fields)
    if new == MessageStatus.FAILED and moved:
        title = update.error_title or update.error_message or "delivery failed"
        for conversation_id in {conversation_id for _, conversation_id in rows}:
            conversation_flag_for_staff(
                conversation_id=conversation_id,
                reason=clean_str(
                    f"A message could not be delivered ({fields['error_code'] or '?'}): {title}"
                ),
            )
    return moved
