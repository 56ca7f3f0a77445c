"""Webhook events: stored with their effects in one transaction, replayable."""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from channels_app.adapters import get_adapter
from channels_app.models import ChannelAccount, WebhookEvent, WebhookEventStatus
from conversations import turns
from conversations.inbound.receipts import status_update_apply
from conversations.inbound.storing import (
    ERROR_MAX,
    NOTES_SHOWN,
    Outcome,
    _clean,
    _clean_str,
    inbound_item_apply,
)
from conversations.models import (
    MessageStatus,
)
from icmp import strict_json

logger = logging.getLogger(__name__)


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


# Only JSON escapes can bring NUL or a lone surrogate into a decoded string.
_MAY_NEED_CLEANING = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def parse_json(text: str) -> Any:
    """Strict JSON (icmp.strict_json): no NaN or Infinity, no nesting past its limit.

    Lone surrogates are kept, not refused (a user's broken emoji can reach Meta's
    payload), but cleaned with NUL characters here, once, so routing and look-ups
    query with the same strings storing writes. Raises ValueError.
    """
    payload = strict_json.loads(text, allow_lone_surrogates=True)
    return _clean(payload) if _MAY_NEED_CLEANING.search(text) else payload


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
            received_for=account,
        )
        return _event_apply(event, payload=payload, scope=account)


def webhook_event_replay(*, event_id: uuid.UUID) -> WebhookEvent:
    """Apply a stored event again, through the same path; duplicates are no-ops.

    An event that came to an account's own URL stays limited to that account's items.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=event_id)
        scope = (
            ChannelAccount.objects.filter(pk=event.received_for_id).select_related("business").first()
            if event.received_for_id
            else None
        )
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
