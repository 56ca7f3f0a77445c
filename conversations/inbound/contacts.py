"""Finding the customer behind an inbound message: one contact per person, whatever ids arrive.

WhatsApp identifies a customer by a business-scoped user id (BSUID) and, when
the user shares it, a phone number. Either may arrive alone, so a contact first
known by number may later arrive with a BSUID, or the reverse. The contact is
found by either, keyed (`external_id`) by the BSUID once there is one, and two
contacts that turn out to be the same person are merged into the older one
(docs/whatsapp-identity.md). Other channels have one id and use `contact_upsert`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from channels_app.adapters.base import CustomerIdentity, IdentityUpdate
from channels_app.models import ChannelAccount
from conversations.inbound.cleaning import clean_str
from conversations.models import (
    RELEASED_PREFIX,
    AIMode,
    Contact,
    Conversation,
    ConversationStatus,
    LLMCall,
    Message,
    MessageStatus,
)

logger = logging.getLogger(__name__)

# Column sizes: an id longer than its column is a malformed item, not a crash.
CONTACT_ID_MAX = 160
CONTACT_NAME_MAX = 200
PHONE_MAX = 32
ATTEMPTS = 3  # a concurrent delivery may win an INSERT or UPDATE race; the next attempt finds its row


def _ids(identity: CustomerIdentity) -> CustomerIdentity:
    def clean(value: str, limit: int = CONTACT_ID_MAX) -> str:
        value = clean_str(value or "").strip()
        return value if len(value) <= limit else ""

    return CustomerIdentity(
        phone=clean(identity.phone, PHONE_MAX),
        bsuid=clean(identity.bsuid),
        parent_bsuid=clean(identity.parent_bsuid),
        username=clean(identity.username, 64),
    )


def contact_upsert(*, account: ChannelAccount, external_id: str, name: str = "") -> Contact:
    """The account's contact with that id, created on first contact; a non-empty profile name refreshes it."""
    name = clean_str(name or "").strip()[:CONTACT_NAME_MAX]
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


def contact_resolve(
    *, account: ChannelAccount, external_id: str, name: str = "", identity: CustomerIdentity | None = None
) -> Contact:
    """The one contact for this customer, created or completed with the ids the message carried."""
    ids = _ids(identity) if identity is not None else None
    if ids is None or not (ids.bsuid or ids.phone):
        return contact_upsert(account=account, external_id=external_id, name=name)
    name = clean_str(name or "").strip()[:CONTACT_NAME_MAX]
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                return _resolve(account, ids, name)
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _matching(account: ChannelAccount, *, bsuid: str, phone: str) -> tuple[Contact | None, Contact | None]:
    """The contacts holding this BSUID and this number. `external_id` counts only for a contact
    that has neither (one stored before the ids had their own fields): elsewhere it may be stale."""
    unkeyed = Q(bsuid__isnull=True, phone__isnull=True)
    condition = Q()
    if bsuid:
        condition |= Q(bsuid=bsuid) | (unkeyed & Q(external_id=bsuid))
    if phone:
        condition |= Q(phone=phone) | (unkeyed & Q(external_id=phone))
    # Locked, so two deliveries for the same person complete or merge one after the other.
    rows = list(
        Contact.objects.select_for_update().filter(condition, channel_account=account).order_by("created_at")
    )

    def holds(contact: Contact, value: str, field: str) -> bool:
        stored = getattr(contact, field)
        return bool(value) and (stored == value or (stored is None and contact.external_id == value))

    by_bsuid = next((c for c in rows if holds(c, bsuid, "bsuid")), None)
    by_phone = next((c for c in rows if holds(c, phone, "phone") and c != by_bsuid), None)
    return by_bsuid, by_phone


def _resolve(account: ChannelAccount, ids: CustomerIdentity, name: str) -> Contact:
    by_bsuid, by_phone = _matching(account, bsuid=ids.bsuid, phone=ids.phone)
    if by_phone is not None and ids.bsuid and by_phone.bsuid and by_phone.bsuid != ids.bsuid:
        # The number now belongs to another WhatsApp user (numbers are recycled): it leaves the old contact.
        _release_phone(by_phone)
        by_phone = None
    if by_bsuid is not None and by_phone is not None:
        contact = _merge(*sorted((by_bsuid, by_phone), key=lambda c: c.created_at))
    else:
        contact = by_bsuid or by_phone
    if contact is None:
        return Contact.objects.create(
            business_id=account.business_id,
            channel_account=account,
            external_id=ids.bsuid or ids.phone,
            name=name,
            phone=ids.phone or None,
            bsuid=ids.bsuid or None,
            parent_bsuid=ids.parent_bsuid or None,
            username=ids.username,
        )
    return _complete(contact, ids, name)


def _complete(contact: Contact, ids: CustomerIdentity, name: str) -> Contact:
    """Fill in what the contact lacked or what changed; it is keyed by its BSUID, else its number."""
    wanted = {
        "bsuid": ids.bsuid,
        "phone": ids.phone,
        "parent_bsuid": ids.parent_bsuid,
        "username": ids.username,
        "name": name,
    }
    fields = [key for key, value in wanted.items() if value and getattr(contact, key) != value]
    for key in fields:
        setattr(contact, key, wanted[key])
    key = contact.bsuid or contact.phone
    if key and contact.external_id != key:
        contact.external_id = key
        fields.append("external_id")
    if fields:
        contact.save(update_fields=[*fields, "updated_at"])
    return contact


def _release_phone(contact: Contact) -> None:
    """The number now belongs to someone else: the contact lets go of it, and of it as its key."""
    fields: dict[str, Any] = {"phone": None, "updated_at": timezone.now()}
    if not contact.bsuid:
        # Nothing else identifies this person any more; the key must never match a newcomer.
        fields["external_id"] = f"{RELEASED_PREFIX}{contact.pk}"
    Contact.objects.filter(pk=contact.pk).update(**fields)
    contact.phone = None
    contact.external_id = fields.get("external_id", contact.external_id)
    logger.info("phone number moved to another whatsapp user", extra={"contact_id": str(contact.pk)})


def _merge(keep: Contact, other: Contact) -> Contact:
    """`other` was the same person: its conversations join `keep`, which stays the one open contact.

    Unanswered messages of `other`'s open conversation move to `keep`'s open one
    (so they are answered there); the rest of its history stays in that
    conversation, closed and moved to `keep`.
    """
    keep_open = Conversation.objects.filter(contact=keep, status=ConversationStatus.OPEN).first()
    other_open = Conversation.objects.filter(contact=other, status=ConversationStatus.OPEN).first()
    now = timezone.now()
    if keep_open is not None and other_open is not None:
        pending = Message.objects.filter(conversation=other_open, status=MessageStatus.RECEIVED)
        LLMCall.objects.filter(message__in=pending).update(conversation=keep_open)
        pending.update(conversation=keep_open, updated_at=now)
        Conversation.objects.filter(pk=other_open.pk).update(
            status=ConversationStatus.CLOSED, closed_at=now, updated_at=now
        )
        Conversation.objects.filter(pk=keep_open.pk).update(**_joined(keep_open, other_open), updated_at=now)
    Conversation.objects.filter(contact=other).update(contact=keep, updated_at=now)
    # The other contact's ids pass to `keep`: free them first (they are unique per account).
    moved = {name: getattr(other, name) for name in ("phone", "bsuid", "parent_bsuid", "username", "name")}
    other.delete()
    for field_name, value in moved.items():
        if value and not getattr(keep, field_name):
            setattr(keep, field_name, value)
    keep.save(update_fields=["phone", "bsuid", "parent_bsuid", "username", "name", "updated_at"])
    logger.info(
        "contacts merged",
        extra={
            "contact_id": str(keep.pk),
            "merged_contact_id": str(other.pk),
            "business_id": str(keep.business_id),
        },
    )
    return keep


def _joined(keep: Conversation, other: Conversation) -> dict[str, Any]:
    """The open conversation's state after another one of the same person joins it.

    The more careful state wins: a staff takeover or a handoff of either stays;
    data collected in either is kept (the surviving conversation's values first).
    """
    return {
        "last_message_at": max(keep.last_message_at, other.last_message_at),
        "last_inbound_at": max(filter(None, (keep.last_inbound_at, other.last_inbound_at)), default=None),
        "ai_mode": AIMode.PAUSED if AIMode.PAUSED in (keep.ai_mode, other.ai_mode) else keep.ai_mode,
        "needs_human": keep.needs_human or other.needs_human,
        "handoff_reason": keep.handoff_reason or other.handoff_reason,
        "collected_data": {**(other.collected_data or {}), **(keep.collected_data or {})},
        "collected_data_sources": {
            **(other.collected_data_sources or {}),
            **(keep.collected_data_sources or {}),
        },
    }


def contact_identity_update(*, account: ChannelAccount, update: IdentityUpdate) -> Contact | None:
    """A customer's new number or BSUID: the contact follows them. None when we never met them."""
    previous, current = _ids(update.previous), _ids(update.current)
    for attempt in range(ATTEMPTS):
        try:
            with transaction.atomic():
                return _follow(account, previous, current)
        except IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _follow(account: ChannelAccount, previous: CustomerIdentity, current: CustomerIdentity) -> Contact | None:
    by_bsuid, by_phone = _matching(account, bsuid=previous.bsuid, phone=previous.phone)
    contact = by_bsuid or by_phone
    if contact is None:
        return None
    if current.bsuid:
        newer, _ = _matching(account, bsuid=current.bsuid, phone="")
        if newer is not None and newer != contact:
            # The user wrote from the new id before the announcement arrived.
            contact = _merge(*sorted((contact, newer), key=lambda c: c.created_at))
        if contact.bsuid != current.bsuid:
            # The old ids no longer name this user; the new ones replace them below.
            Contact.objects.filter(pk=contact.pk).update(bsuid=None, parent_bsuid=None)
            contact.bsuid = contact.parent_bsuid = None
    if current.phone and contact.phone != current.phone:
        _, holder = _matching(account, bsuid="", phone=current.phone)
        if holder is not None and holder != contact:
            _release_phone(holder)
        if not current.bsuid and contact.bsuid:
            # A new number means a new BSUID, not announced here: the old one names nobody
            # now, and the customer's next message (new number, new BSUID) completes the contact.
            Contact.objects.filter(pk=contact.pk).update(bsuid=None, parent_bsuid=None)
            contact.bsuid = contact.parent_bsuid = None
    return _complete(contact, current, "")
