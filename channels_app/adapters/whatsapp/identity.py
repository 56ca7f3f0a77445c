"""Who wrote: phone numbers, business-scoped user ids (BSUID) and usernames in WhatsApp webhooks.

Since 2026 a WhatsApp user may hide their number behind a username. Every
inbound message then carries a BSUID (`contacts[].user_id`, and in some
payloads `messages[].from_user_id`), while `from` and `contacts[].wa_id` (the
number) are present only when Meta shares it. A number change gives the user a
new BSUID, announced as a system message (`user_changed_number`,
`user_changed_user_id`) or a `user_id_update` change. The shapes the code
relies on are in docs/whatsapp-identity.md.
"""

from __future__ import annotations

import re
from typing import Any

from ..base import CustomerIdentity, IdentityUpdate
from ..payload import as_dict, as_list, as_str

# A country code, a dot, an optional ENT. (a parent BSUID) and up to 128 alphanumerics.
BSUID_RE = re.compile(r"^[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]{1,128}$")
IDENTITY_SYSTEM_TYPES = frozenset({"user_changed_number", "user_changed_user_id"})


def is_bsuid(value: str) -> bool:
    """A BSUID, as opposed to a phone number (digits only): decides `recipient` over `to`."""
    return bool(BSUID_RE.match(value))


def _contact_for(contacts: list[Any], phone: str, bsuid: str) -> dict[str, Any]:
    entries = [as_dict(contact) for contact in contacts]
    for entry in entries:
        if (phone and as_str(entry.get("wa_id")) == phone) or (
            bsuid and as_str(entry.get("user_id")) == bsuid
        ):
            return entry
    # Without a number or a BSUID on the message, the change's single contact is its sender.
    return entries[0] if len(entries) == 1 and not phone and not bsuid else {}


def message_identity(
    item: dict[str, Any], contacts: list[Any], *, echo: bool
) -> tuple[CustomerIdentity, str]:
    """The customer's ids and profile name for one message (`to` for an echo the business sent)."""
    side = "to" if echo else "from"
    phone = as_str(item.get(side))
    bsuid = as_str(item.get(f"{side}_user_id"))
    if is_bsuid(phone):  # a BSUID in the number's field: never stored as a number
        phone, bsuid = "", bsuid or phone
    contact = _contact_for(contacts, phone, bsuid)
    profile = as_dict(contact.get("profile"))
    identity = CustomerIdentity(
        phone=phone or as_str(contact.get("wa_id")),
        bsuid=bsuid or as_str(contact.get("user_id")),
        parent_bsuid=as_str(item.get(f"{side}_parent_user_id")) or as_str(contact.get("parent_user_id")),
        username=as_str(profile.get("username")),
    )
    return identity, as_str(profile.get("name"))


def system_identity_update(routing: str, item: dict[str, Any]) -> IdentityUpdate | None:
    """A `system` message announcing a new number or BSUID; None for other system messages."""
    system = as_dict(item.get("system"))
    if as_str(system.get("type")) not in IDENTITY_SYSTEM_TYPES:
        return None
    return IdentityUpdate(
        routing_id=routing,
        previous=CustomerIdentity(
            phone=as_str(item.get("from")),
            bsuid=as_str(system.get("previous_user_id")) or as_str(item.get("from_user_id")),
            parent_bsuid=as_str(system.get("previous_parent_user_id")),
        ),
        current=CustomerIdentity(
            phone=as_str(system.get("wa_id")),
            bsuid=as_str(system.get("user_id")),
            parent_bsuid=as_str(system.get("parent_user_id")),
        ),
        raw=item,
    )


def _pair(entry: dict[str, Any], key: str) -> tuple[str, str]:
    """(previous, current) of `key`: `previous_<key>` and `<key>`, or `<key>: {previous, current}`."""
    value = entry.get(key)
    if isinstance(value, dict):
        return as_str(value.get("previous")), as_str(value.get("current"))
    return as_str(entry.get(f"previous_{key}")), as_str(value)


def user_id_updates(routing: str, value: dict[str, Any]) -> list[IdentityUpdate]:
    """The `user_id_update` change: one entry, or a list of them under the same key."""
    entries = as_list(value.get("user_id_update")) or [value]
    updates = []
    for entry in map(as_dict, entries):
        previous_bsuid, bsuid = _pair(entry, "user_id")
        previous_parent, parent = _pair(entry, "parent_user_id")
        previous_phone, phone = _pair(entry, "wa_id")
        if not previous_bsuid and not previous_phone:
            continue
        updates.append(
            IdentityUpdate(
                routing_id=routing,
                previous=CustomerIdentity(
                    phone=previous_phone, bsuid=previous_bsuid, parent_bsuid=previous_parent
                ),
                current=CustomerIdentity(phone=phone, bsuid=bsuid, parent_bsuid=parent),
                raw=entry,
            )
        )
    return updates
