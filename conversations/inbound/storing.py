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
    # One UPDATE; times only move forward (Meta delivers out of order).
    fields: dict[str, Any] = {"last_message_at": Greatest(F("last_message_at"), Value(at))}
    if inbound:
        fields["last_inbound_at"] = Greatest(Coalesce(F("last_inbound_at"), Value(at)), Value(at))
    Conversation.objects.filter(pk=conversation_id).update(**fields)


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
