"""A customer changing what they sent: WhatsApp edits and revokes, Instagram unsends.

The change applies to the stored original; no new customer message is stored.
A message not answered yet is read by its turn as it now stands (edited text),
or skipped (revoked). An edit keeps the previous text in the message's history;
a revoke keeps nothing, since the customer took the message back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from channels_app.models import ChannelAccount
from conversations.inbound.cleaning import clean_json, clean_str
from conversations.models import Direction, Message, MessageStatus, MessageType

logger = logging.getLogger(__name__)

UNSENT_SKIPPED = "The customer unsent this message."
REVOKED_SKIPPED = "The customer deleted this message."
EDITS_KEPT = 20  # the history kept per message; WhatsApp allows edits for 15 minutes only


def _original(account: ChannelAccount, external_id: str, *, change: str) -> Message | None:
    """The customer message a change refers to, locked; None (logged) when we never stored it."""
    message = (
        Message.objects.select_for_update()
        .filter(channel_account=account, external_id=clean_str(external_id), direction=Direction.IN)
        .first()
    )
    if message is None:
        logger.info(
            "change to an unknown message ignored",
            extra={"channel_account_id": str(account.pk), "external_id": external_id[:255], "change": change},
        )
    return message


def message_edit_apply(
    *,
    account: ChannelAccount,
    original_external_id: str,
    edit_external_id: str,
    type: str,
    text: str,
    payload: dict[str, Any],
    at: datetime,
) -> Message | None:
    """Replace the original's content; None when we never stored the original."""
    with transaction.atomic():
        message = _original(account, original_external_id, change="edit")
        if message is None:
            return None
        old = message.payload if isinstance(message.payload, dict) else {}
        edits = [edit for edit in old.get("edits", []) if isinstance(edit, dict)]
        if old.get("deleted") or any(edit.get("id") == edit_external_id for edit in edits):
            return message  # a redelivery, or an edit racing the customer's revoke
        edits.append(
            {
                "id": edit_external_id,
                "at": at.isoformat(),
                "previous_type": message.type,
                "text": message.text,
            }
        )
        message.type = type if type in MessageType.values else MessageType.UNSUPPORTED
        message.text = clean_str(text)
        message.payload = {**clean_json(payload), "edits": edits[-EDITS_KEPT:]}
        message.save(update_fields=["type", "text", "payload", "updated_at"])
    logger.info("message edited by the customer", extra={"message_id": str(message.pk)})
    return message


def message_withdraw_apply(
    *, account: ChannelAccount, original_external_id: str, revoked: bool
) -> Message | None:
    """A WhatsApp revoke or an Instagram unsend: the original loses its text and is not answered."""
    with transaction.atomic():
        message = _original(account, original_external_id, change="revoke" if revoked else "unsend")
        if message is None:
            return None
        old = message.payload if isinstance(message.payload, dict) else {}
        # The customer took it back: drop earlier versions too.
        payload = {key: value for key, value in old.items() if key != "edits"}
        message.text = ""
        message.payload = {**payload, "deleted": True, **({"revoked": True} if revoked else {})}
        message.save(update_fields=["text", "payload", "updated_at"])
        Message.objects.filter(pk=message.pk, status=MessageStatus.RECEIVED).update(
            status=MessageStatus.SKIPPED,
            error=REVOKED_SKIPPED if revoked else UNSENT_SKIPPED,
            status_changed_at=timezone.now(),
        )
    return message
