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
from conversations.models import Contact, Conversation, ConversationStatus, LLMCall, Message, MessageStatus

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
    condition = Q()
    if bsuid:
        condition |= Q(bsuid=bsuid) | Q(external_id=bsuid)
    if phone:
        condition |= Q(phone=phone) | Q(external_id=phone)
    # Locked, so two deliveries for the same person complete or merge one after the other.
    rows = list(
        Contact.objects.select_for_update().filter(condition, channel_account=account).order_by("created_at")
    )
    by_bsuid = next((c for c in rows if bsuid and bsuid in (c.bsuid, c.external_id)), None)
    by_phone = next((c for c in rows if phone and phone in (c.phone, c.external_id) and c != by_bsuid), None)
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
    """Fill in what the contact lacked or what changed; the BSUID becomes its key."""
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
    if contact.bsuid and contact.external_id != contact.bsuid:
        contact.external_id = contact.bsuid
        fields.append("external_id")
    if fields:
        contact.save(update_fields=[*fields, "updated_at"])
    return contact


def _release_phone(contact: Contact) -> None:
    fields: dict[str, Any] = {"phone": None, "updated_at": timezone.now()}
    Contact.objects.filter(pk=contact.pk).update(**fields)
    contact.phone = None
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
        Conversation.objects.filter(pk=keep_open.pk).update(
            last_message_at=max(keep_open.last_message_at, other_open.last_message_at),
            last_inbound_at=max(
                filter(None, (keep_open.last_inbound_at, other_open.last_inbound_at)), default=None
            ),
            updated_at=now,
        )
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
    return _complete(contact, current, "")
