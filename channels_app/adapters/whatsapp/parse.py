"""WhatsApp inbound: webhook payloads (messages, echoes, statuses, errors) to a ParsedBatch.

Shapes: docs/meta-platform.md §3; customer identity (BSUID, usernames), edits
and revokes: docs/whatsapp-identity.md.
"""

from __future__ import annotations

from typing import Any

from ..base import (
    ChannelError,
    DeliveryStatus,
    InboundMessage,
    MessageType,
    ParsedBatch,
    RejectedItem,
    StatusUpdate,
)
from ..payload import as_dict, as_float, as_str, clean_errors, list_at, now, parse_timestamp, safely
from .identity import message_identity, system_identity_update, user_id_updates

MEDIA_TYPES = {
    "image": MessageType.IMAGE,
    "audio": MessageType.AUDIO,
    "video": MessageType.VIDEO,
    "document": MessageType.DOCUMENT,
    "sticker": MessageType.STICKER,
}
MEDIA_STR_FIELDS = ("id", "mime_type", "sha256", "caption", "filename", "url")
MEDIA_BOOL_FIELDS = ("voice", "animated")
# Older payloads omit `type` (location); the content key then names it.
INFERABLE_TYPES = (*MEDIA_TYPES, "text", "location", "contacts", "interactive", "button", "reaction")
STATUSES = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.READ,  # first play of a voice note: it was heard, so read
    "failed": DeliveryStatus.FAILED,
}
# Message fields with (type, text, payload) content builders.
Content = tuple[MessageType, str, dict[str, Any]]


class WhatsAppParsing:
    """The parsing half of WhatsAppAdapter."""

    def parse(self, payload: Any) -> ParsedBatch:
        batch = ParsedBatch()
        if not isinstance(payload, dict):
            batch.problems.append(f"payload: expected an object, got {type(payload).__name__}")
            return batch
        if payload.get("object") not in (None, "whatsapp_business_account"):
            batch.problems.append(f"payload.object: unexpected {payload.get('object')!r}")
            return batch
        for i, entry in enumerate(list_at(batch, payload, "entry", "payload")):
            if not isinstance(entry, dict):
                batch.problems.append(f"entry[{i}]: expected an object")
                continue
            for j, change in enumerate(list_at(batch, entry, "changes", f"entry[{i}]")):
                safely(
                    batch, f"entry[{i}].changes[{j}]", self._change, batch, change, f"entry[{i}].changes[{j}]"
                )
        return batch

    def _change(self, batch: ParsedBatch, change: Any, where: str) -> None:
        change = as_dict(change)
        field = change.get("field")
        if field == "user_id_update":
            self._user_id_update(batch, change, where)
            return
        if field == "messages":
            key, echo = "messages", False
        elif field == "smb_message_echoes":
            # Coexistence: messages the business sent from the WhatsApp Business app.
            key, echo = "message_echoes", True
        else:
            batch.ignored.append(f"{where}: field {field!r}")
            return
        value = change.get("value")
        if not isinstance(value, dict):
            batch.problems.append(f"{where}.value: expected an object")
            return
        routing = as_str(as_dict(value.get("metadata")).get("phone_number_id"))
        if not routing:
            batch.problems.append(f"{where}.value.metadata.phone_number_id: missing")
            return
        contacts = list_at(batch, value, "contacts", f"{where}.value")
        for k, item in enumerate(list_at(batch, value, key, f"{where}.value")):
            at = f"{where}.value.{key}[{k}]"
            safely(batch, at, self._message, batch, item, routing, contacts, at, echo)
        for k, item in enumerate(list_at(batch, value, "statuses", f"{where}.value")):
            at = f"{where}.value.statuses[{k}]"
            safely(batch, at, self._status, batch, item, routing, at)
        for item in list_at(batch, value, "errors", f"{where}.value"):
            for error in clean_errors([item]):
                batch.errors.append(
                    ChannelError(
                        routing_id=routing,
                        code=error["code"],
                        title=error["title"],
                        message=error["message"],
                        details=error["details"],
                        raw=item,
                    )
                )

    def _user_id_update(self, batch: ParsedBatch, change: dict[str, Any], where: str) -> None:
        value = as_dict(change.get("value"))
        routing = as_str(as_dict(value.get("metadata")).get("phone_number_id"))
        updates = user_id_updates(routing, value)
        if not routing or not updates:
            batch.problems.append(f"{where}: user_id_update without a phone_number_id or previous id")
        batch.identity_updates.extend(update for update in updates if routing)

    def _message(
        self, batch: ParsedBatch, item: Any, routing: str, contacts: list[Any], where: str, echo: bool
    ) -> None:
        if not isinstance(item, dict):
            batch.problems.append(f"{where}: expected an object")
            return
        raw, external_id = item, as_str(item.get("id"))
        if as_str(item.get("type")) == "system" and (update := system_identity_update(routing, item)):
            batch.identity_updates.append(update)
            return
        identity, name = message_identity(item, contacts, echo=echo)
        contact = identity.bsuid or identity.phone
        if not external_id:
            batch.problems.append(f"{where}: message without id")
            return
        if not contact:
            # Addressed to an account, so never dropped in silence: the event fails and stays replayable.
            batch.rejected.append(
                RejectedItem(
                    routing_id=routing,
                    reason=f"message {external_id[:80]!r} names no sender (no from, from_user_id "
                    "or contacts[].user_id)",
                    raw=item,
                )
            )
            return
        timestamp = parse_timestamp(item.get("timestamp"))
        if timestamp is None:
            batch.problems.append(f"{where}.timestamp: invalid, using the time of parsing")
            timestamp = now()
        kind = as_str(item.get("type")) or next(
            (key for key in INFERABLE_TYPES if isinstance(item.get(key), dict | list)), ""
        )
        edit_of = revoke_of = ""
        if kind == "edit":  # new content for an earlier message, under the edit's own id
            edit = as_dict(item.get("edit"))
            edit_of = as_str(edit.get("original_message_id"))
            item = {**item, **as_dict(edit.get("message"))}
            kind = as_str(item.get("type"))
            if not edit_of or kind in ("", "edit"):
                batch.problems.append(f"{where}: edit without original_message_id or new content")
                return
        elif kind == "revoke":
            revoke_of = as_str(as_dict(item.get("revoke")).get("original_message_id"))
            if not revoke_of:
                batch.problems.append(f"{where}: revoke without original_message_id")
                return
        mtype, text, payload = self._content(kind, item)
        if mtype == MessageType.UNSUPPORTED and payload.get("malformed"):
            batch.problems.append(f"{where}.{kind}: malformed content")
        context = as_dict(item.get("context"))
        for flag in ("forwarded", "frequently_forwarded"):
            if context.get(flag) is True:
                payload[flag] = True
        if isinstance(context.get("referred_product"), dict):
            payload["referred_product"] = context["referred_product"]
        if isinstance(item.get("referral"), dict):
            payload["referral"] = item["referral"]
        if item.get("errors") is not None:
            payload["errors"] = clean_errors(item.get("errors"))
        batch.messages.append(
            InboundMessage(
                routing_id=routing,
                contact_external_id=contact,
                contact_name=name,
                identity=identity,
                edit_of=edit_of,
                revoke_of=revoke_of,
                external_id=external_id,
                timestamp=timestamp,
                type=mtype,
                text=text,
                payload=payload,
                reply_to_external_id=as_str(context.get("id")) or None,
                raw=raw,
                is_echo=echo,
            )
        )

    def _content(self, kind: str, item: dict[str, Any]) -> Content:
        body = item.get(kind)
        if kind in ("unsupported", "unknown"):
            # Current form names the real type; the legacy "unknown" form does not.
            return (
                MessageType.UNSUPPORTED,
                "",
                {"unsupported_type": as_str(as_dict(body).get("type")) or kind},
            )
        if kind == "contacts":
            if not isinstance(body, list):
                return _malformed(kind)
            cards = [card for card in body if isinstance(card, dict)]
            return MessageType.CONTACTS, "", {"contacts": cards}
        if not isinstance(body, dict):
            return _malformed(kind) if kind in INFERABLE_TYPES else _unsupported(kind, body)
        if kind == "text":
            return MessageType.TEXT, as_str(body.get("body")), {}
        if kind in MEDIA_TYPES:
            payload: dict[str, Any] = {f: as_str(body[f]) for f in MEDIA_STR_FIELDS if f in body}
            payload.update({f: body[f] for f in MEDIA_BOOL_FIELDS if isinstance(body.get(f), bool)})
            return MEDIA_TYPES[kind], payload.get("caption", ""), payload
        if kind == "location":
            return (
                MessageType.LOCATION,
                "",
                {
                    "latitude": as_float(body.get("latitude")),
                    "longitude": as_float(body.get("longitude")),
                    "name": as_str(body.get("name")),
                    "address": as_str(body.get("address")),
                    "url": as_str(body.get("url")),
                },
            )
        if kind == "interactive":
            return self._interactive(body)
        if kind == "button":
            # A tap on a template's quick-reply button.
            title, data = as_str(body.get("text")), as_str(body.get("payload"))
            return MessageType.BUTTON, title, {"id": data, "payload": data, "title": title}
        if kind == "reaction":
            emoji = as_str(body.get("emoji"))
            return (
                MessageType.REACTION,
                "",
                {
                    "emoji": emoji,
                    "message_id": as_str(body.get("message_id")),
                    # Removing a reaction arrives as a reaction with no emoji.
                    "action": "react" if emoji else "unreact",
                },
            )
        if kind == "system":
            return (
                MessageType.UNSUPPORTED,
                as_str(body.get("body")),
                {"unsupported_type": "system", "system": body},
            )
        return _unsupported(kind, body)

    def _interactive(self, body: dict[str, Any]) -> Content:
        reply_type = as_str(body.get("type"))
        reply = as_dict(body.get(reply_type))
        if reply_type in ("button_reply", "list_reply"):
            title = as_str(reply.get("title"))
            payload = {"reply_type": reply_type, "id": as_str(reply.get("id")), "title": title}
            if reply_type == "list_reply":
                payload["description"] = as_str(reply.get("description"))
            return MessageType.INTERACTIVE, title, payload
        if reply_type == "nfm_reply":  # a WhatsApp Flow completion
            text = as_str(reply.get("body"))
            return (
                MessageType.INTERACTIVE,
                text,
                {
                    "reply_type": reply_type,
                    "name": as_str(reply.get("name")),
                    "response_json": as_str(reply.get("response_json")),
                },
            )
        return _unsupported(f"interactive.{reply_type or 'unknown'}", body)

    def _status(self, batch: ParsedBatch, item: Any, routing: str, where: str) -> None:
        item = as_dict(item)
        external_id = as_str(item.get("id"))
        status = STATUSES.get(as_str(item.get("status")))
        if not external_id or status is None:
            batch.problems.append(f"{where}: status without id or with unknown status {item.get('status')!r}")
            return
        timestamp = parse_timestamp(item.get("timestamp"))
        if timestamp is None:
            batch.problems.append(f"{where}.timestamp: invalid, using the time of parsing")
            timestamp = now()
        errors = clean_errors(item.get("errors"))
        first = errors[0] if errors else {}
        batch.statuses.append(
            StatusUpdate(
                routing_id=routing,
                external_id=external_id,
                status=status,
                timestamp=timestamp,
                # Either may be missing since usernames: receipts match by message id alone.
                contact_external_id=as_str(item.get("recipient_user_id")) or as_str(item.get("recipient_id")),
                error_code=first.get("code"),
                error_title=first.get("title", ""),
                error_message=first.get("details") or first.get("message", ""),
                callback_data=as_str(item.get("biz_opaque_callback_data")),
                raw=item,
            )
        )


def _malformed(kind: str) -> Content:
    return MessageType.UNSUPPORTED, "", {"unsupported_type": kind, "malformed": True}


def _unsupported(kind: str, body: Any) -> Content:
    # order, request_welcome, ephemeral and whatever Meta adds next: keep what came.
    payload: dict[str, Any] = {"unsupported_type": kind or "unknown"}
    if isinstance(body, dict):
        payload["content"] = body
    return MessageType.UNSUPPORTED, "", payload
