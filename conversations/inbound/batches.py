"""One webhook body's items, split by business and applied.

The raw event is a platform record. Its items are split by the business their
account belongs to: each business's items are applied in their own savepoint
and recorded in a `WebhookEventPart`, the only view of the event a tenant gets.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import OperationalError, transaction

from channels_app.adapters import get_adapter
from channels_app.adapters.base import (
    ChannelError,
    IdentityUpdate,
    InboundMessage,
    RejectedItem,
    StatusUpdate,
)
from channels_app.models import ChannelAccount, WebhookEvent, WebhookEventPart, WebhookEventPartStatus
from conversations.inbound.cleaning import ERROR_MAX, NOTES_SHOWN, clean_str, parse_json
from conversations.inbound.contacts import contact_identity_update
from conversations.inbound.receipts import status_update_apply
from conversations.inbound.storing import Outcome, inbound_item_apply
from conversations.models import ConversationStatus, Message, MessageStatus

logger = logging.getLogger(__name__)


def notes_summary(notes: list[str]) -> str:
    if not notes:
        return ""
    shown = notes[:NOTES_SHOWN]
    more = len(notes) - len(shown)
    return clean_str("\n".join(shown) + (f"\n… and {more} more" if more > 0 else ""))[:ERROR_MAX]


@dataclass
class _Part:
    """One business's items of an event and what applying them did; never another's."""

    account: ChannelAccount  # the first of the business's accounts the items were addressed to
    accounts: dict[str, ChannelAccount] = field(default_factory=dict)  # by routing id
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    errors: list[ChannelError] = field(default_factory=list)
    identity_updates: list[IdentityUpdate] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: str = ""
    to_process: dict[uuid.UUID, None] = field(default_factory=dict)

    def items_json(self, stored: str = "") -> str:
        """This business's items, after those `stored` by an earlier application (none twice).

        A replay routes by today's accounts: an item whose account was since deactivated
        routes nowhere, but the business received it and keeps it in its view.
        """
        items = _stored_items(stored)
        seen = {key: {_canonical(raw) for raw in raws} for key, raws in items.items()}
        for key, raws in (
            ("messages", [item.raw for item in self.messages]),
            ("statuses", [item.raw for item in self.statuses]),
            ("errors", [item.raw for item in self.errors]),
            ("identity_updates", [item.raw for item in self.identity_updates]),
            ("rejected", [item.raw for item in self.rejected]),
        ):
            for raw in raws:
                canonical = _canonical(raw)
                if canonical not in seen.setdefault(key, set()):
                    seen[key].add(canonical)
                    items.setdefault(key, []).append(raw)
        # ASCII escapes: lone surrogates and NULs stay storable as text.
        return json.dumps({key: value for key, value in items.items() if value}, default=str)


def _canonical(raw: Any) -> str:
    return json.dumps(raw, sort_keys=True, default=str)


def _stored_items(text: str) -> dict[str, list[Any]]:
    try:
        stored = json.loads(text) if text else {}
    except ValueError:
        return {}
    if not isinstance(stored, dict):
        return {}
    return {key: list(value) for key, value in stored.items() if isinstance(value, list)}


@dataclass
class Applied:
    routed: int = 0
    unrouted: int = 0
    # Platform notes (problems, unrouted items): only on the platform-level event.
    notes: list[str] = field(default_factory=list)
    parts: dict[uuid.UUID, _Part] = field(default_factory=dict)

    def part_for(self, account: ChannelAccount) -> _Part:
        part = self.parts.get(account.business_id)
        if part is None:
            part = self.parts[account.business_id] = _Part(account=account)
        part.accounts[account.external_id] = account
        return part

    @property
    def conversation_ids(self) -> list[uuid.UUID]:
        """The conversations with new customer messages: one processing run each."""
        return list(dict.fromkeys(cid for part in self.parts.values() for cid in part.to_process))

    @property
    def failures(self) -> list[str]:
        return [part.failure for part in self.parts.values() if part.failure]

    def summary(self) -> str:
        return notes_summary(
            [*self.failures, *self.notes, *(n for p in self.parts.values() for n in p.notes)]
        )


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

    def route(self, applied: Applied, routing_id: str, what: str) -> _Part | None:
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
        return applied.part_for(account)


def _route(*, channel: str, payload: Any, scope: ChannelAccount | None) -> Applied:
    """Split the batch by business: each part holds only items addressed to that business's accounts."""
    batch = get_adapter(channel).parse(payload)
    applied = Applied(notes=[f"problem: {problem}" for problem in batch.problems])
    items = (*batch.messages, *batch.statuses, *batch.errors, *batch.identity_updates, *batch.rejected)
    routing_ids = {item.routing_id for item in items if item.routing_id}
    router = _Router(channel=channel, routing_ids=routing_ids, scope=scope)
    for item in batch.messages:
        part = router.route(applied, item.routing_id, f"message {item.external_id[:80]!r}")
        if part is not None:
            part.messages.append(item)
    for update in batch.statuses:
        part = router.route(applied, update.routing_id, f"status {update.external_id or 'watermark'!r}")
        if part is not None:
            part.statuses.append(update)
    for error in batch.errors:
        part = router.route(applied, error.routing_id, f"error {error.code}")
        if part is not None:
            part.errors.append(error)
    for update in batch.identity_updates:
        part = router.route(applied, update.routing_id, "identity update")
        if part is not None:
            part.identity_updates.append(update)
    for rejected in batch.rejected:
        part = router.route(applied, rejected.routing_id, rejected.reason)
        if part is not None:
            part.rejected.append(rejected)
    return applied


def _part_apply(part: _Part) -> None:
    """Store one business's items. Raises on a bug; the caller's savepoint undoes its writes."""
    for item in part.messages:
        account = part.accounts[item.routing_id]
        stored = inbound_item_apply(account=account, item=item)
        if stored.outcome in (Outcome.INVALID, Outcome.UNKNOWN):
            part.notes.append(f"message {item.external_id[:80]!r}: {stored.outcome}")
        elif stored.outcome == Outcome.STORED and stored.message.status == MessageStatus.RECEIVED:
            part.to_process[stored.message.conversation_id] = None
    for update in part.statuses:
        account = part.accounts[update.routing_id]
        if status_update_apply(account=account, update=update) is not None:
            continue
        if update.external_id:  # a watermark that covers none of our messages is normal
            part.notes.append(f"status {update.status} for an unknown message {update.external_id!r}")
            logger.info(
                "receipt for an unknown message ignored",
                extra={"channel_account_id": str(account.pk), "external_id": update.external_id},
            )
    for update in part.identity_updates:
        # After the messages: one from the old id in this batch still finds its contact, and one
        # from the new id made a contact that the update then merges into the old one.
        contact = contact_identity_update(account=part.accounts[update.routing_id], update=update)
        if contact is None:
            part.notes.append("identity update for a customer we have not met: ignored")
            continue
        # A merge may have moved unanswered messages into the contact's open conversation.
        waiting = Message.objects.filter(
            conversation__contact=contact,
            conversation__status=ConversationStatus.OPEN,
            status=MessageStatus.RECEIVED,
        ).values_list("conversation_id", flat=True)
        for conversation_id in waiting[:1]:
            part.to_process[conversation_id] = None
    if part.rejected:
        # Nothing addressed to a business is dropped in silence: the event fails and stays replayable.
        part.failure = "; ".join(item.reason for item in part.rejected)[:ERROR_MAX]
    for error in part.errors:
        part.notes.append(f"channel error {error.code}: {error.title or error.message} {error.details}")
        logger.warning(
            "channel reported an error",
            extra={"channel_account_id": str(part.account.pk), "code": error.code, "title": error.title},
        )


def batch_apply(*, channel: str, payload: Any, scope: ChannelAccount | None) -> Applied:
    applied = _route(channel=channel, payload=payload, scope=scope)
    for business_id, part in applied.parts.items():
        try:
            # One savepoint per business: one tenant's broken item never costs another's.
            with transaction.atomic():
                _part_apply(part)
        except OperationalError:
            raise  # transient (a deadlock, the database gone): not this business's failure
        except Exception as exc:
            logger.exception(
                "webhook items could not be applied",
                extra={"business_id": str(business_id), "channel": channel},
            )
            part.failure = clean_str(f"{type(exc).__name__}: {exc}")[:ERROR_MAX]
            # What the rolled-back work noted or queued did not happen.
            part.notes.clear()
            part.to_process.clear()
    return applied


def parts_save(event: WebhookEvent, applied: Applied) -> None:
    stored = dict(
        WebhookEventPart.objects.filter(event=event, business_id__in=applied.parts).values_list(
            "business_id", "items"
        )
    )
    for business_id, part in applied.parts.items():
        WebhookEventPart.objects.update_or_create(
            event=event,
            business_id=business_id,
            defaults={
                "channel": event.channel,
                "channel_account": part.account,
                "items": part.items_json(stored.get(business_id, "")),
                "status": WebhookEventPartStatus.FAILED if part.failure else WebhookEventPartStatus.PROCESSED,
                "error": notes_summary([part.failure, *part.notes] if part.failure else part.notes),
            },
        )


def pending_conversations_of(event: WebhookEvent) -> list[uuid.UUID]:
    """Conversations whose customer messages from `event` are stored but not answered yet.

    `processing` counts: a turn that died with the worker left them so (its lease runs out).
    """
    try:
        batch = get_adapter(event.channel).parse(parse_json(event.body))
    except ValueError:
        return []
    external_ids = {item.external_id for item in batch.messages if item.external_id}
    if not external_ids:
        return []
    waiting = Message.objects.filter(
        channel_account__kind=event.channel,
        external_id__in=external_ids,
        status__in=(MessageStatus.RECEIVED, MessageStatus.PROCESSING),
    ).values_list("conversation_id", flat=True)
    return list(dict.fromkeys(waiting))
