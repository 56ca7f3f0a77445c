"""Messenger and Instagram inbound: `messaging`/`standby` events to a ParsedBatch.

Shapes: docs/meta-platform.md §4.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..base import DeliveryStatus, InboundMessage, MessageType, ParsedBatch, StatusUpdate
from ..payload import as_dict, as_float, as_list, as_str, list_at, now, parse_timestamp, safely, synthetic_id

ATTACHMENT_TYPES = {
    "image": MessageType.IMAGE,
    "audio": MessageType.AUDIO,
    "video": MessageType.VIDEO,
    "file": MessageType.DOCUMENT,
    "sticker": MessageType.STICKER,
    "location": MessageType.LOCATION,
}
# Events we understand and deliberately do not act on.
IGNORED_EVENTS = (
    "optin",
    "referral",
    "account_linking",
    "message_edit",
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
    "policy_enforcement",
    "messaging_feedback",
    "response_feedback",
    "game_play",
)


@dataclass(frozen=True, slots=True)
class Event:
    """One messaging/standby item with its envelope fields already read."""

    raw: dict[str, Any]
    routing: str
    sender: str
    recipient: str
    timestamp: datetime | None
    where: str
    standby: bool


class MessengerParsing:
    """The parsing half of MessengerAdapter; the adapter sets `objects`."""

    def parse(self, payload: Any) -> ParsedBatch:
        batch = ParsedBatch()
        if not isinstance(payload, dict):
            batch.problems.append(f"payload: expected an object, got {type(payload).__name__}")
            return batch
        if payload.get("object") not in (None, *self.objects):
            batch.problems.append(f"payload.object: unexpected {payload.get('object')!r}")
            return batch
        for i, entry in enumerate(list_at(batch, payload, "entry", "payload")):
            if not isinstance(entry, dict):
                batch.problems.append(f"entry[{i}]: expected an object")
                continue
            routing = as_str(entry.get("id"))
            for key, standby in (("messaging", False), ("standby", True)):
                for k, event in enumerate(list_at(batch, entry, key, f"entry[{i}]")):
                    at = f"entry[{i}].{key}[{k}]"
                    safely(batch, at, self._event, batch, event, routing, at, standby)
            for k, change in enumerate(list_at(batch, entry, "changes", f"entry[{i}]")):
                at = f"entry[{i}].changes[{k}]"
                safely(batch, at, self._change, batch, change, routing, at)
        return batch

    def _change(self, batch: ParsedBatch, change: Any, routing: str, where: str) -> None:
        # Page feed changes (comments, posts) are not conversations.
        batch.ignored.append(f"{where}: field {as_dict(change).get('field')!r}")

    def _event(self, batch: ParsedBatch, event: Any, routing: str, where: str, standby: bool) -> None:
        if not isinstance(event, dict):
            batch.problems.append(f"{where}: expected an object")
            return
        sender = as_dict(event.get("sender"))
        recipient = as_str(as_dict(event.get("recipient")).get("id"))
        ev = Event(
            raw=event,
            # Without an entry id, the account is the recipient (or the sender of an echo).
            routing=routing,
            # Chat-plugin events may name the user by user_ref instead of a PSID.
            sender=as_str(sender.get("id")) or as_str(sender.get("user_ref")),
            recipient=recipient,
            timestamp=parse_timestamp(event.get("timestamp")),
            where=where,
            standby=standby,
        )
        if "message" in event:
            self._message(batch, ev)
        elif "postback" in event:
            self._postback(batch, ev)
        elif "reaction" in event:
            self._reaction(batch, ev)
        elif "delivery" in event or "read" in event:
            self._receipt(batch, ev)
        elif any(key in event for key in IGNORED_EVENTS):
            batch.ignored.append(f"{where}: {next(k for k in IGNORED_EVENTS if k in event)} event")
        else:
            keys = sorted(str(k) for k in event if k not in ("sender", "recipient", "timestamp"))
            batch.problems.append(f"{where}: unknown event {keys}")

    def _message(self, batch: ParsedBatch, ev: Event) -> None:
        message = ev.raw.get("message")
        if not isinstance(message, dict):
            batch.problems.append(f"{ev.where}.message: expected an object")
            return
        mid = as_str(message.get("mid"))
        echo = message.get("is_echo") is True
        # Echoes are sent BY the Page/IG account: the contact is the recipient.
        contact, account = (ev.recipient, ev.sender) if echo else (ev.sender, ev.recipient)
        if not mid or not contact:
            batch.problems.append(f"{ev.where}: message without mid or contact id")
            return
        mtype, text, payload = self._content(message)
        reply_to = as_dict(message.get("reply_to"))
        story = as_dict(reply_to.get("story"))
        if story:  # Instagram story reply
            payload["story"] = {"id": as_str(story.get("id")), "url": as_str(story.get("url"))}
        if isinstance(message.get("referral"), dict):
            payload["referral"] = message["referral"]
        if echo and as_str(message.get("metadata")):
            payload["metadata"] = as_str(message.get("metadata"))
        batch.messages.append(
            InboundMessage(
                routing_id=ev.routing or account,
                contact_external_id=contact,
                external_id=mid,
                timestamp=self._time(batch, ev),
                type=mtype,
                text=text,
                payload=payload,
                reply_to_external_id=as_str(reply_to.get("mid")) or None,
                raw=ev.raw,
                is_echo=echo,
                echo_app_id=as_str(message.get("app_id")) or None,
                is_standby=ev.standby,
                is_deleted=message.get("is_deleted") is True,
            )
        )

    def _content(self, message: dict[str, Any]) -> tuple[MessageType, str, dict[str, Any]]:
        text = as_str(message.get("text"))
        if message.get("is_deleted") is True:  # Instagram unsend: same mid, no content
            return MessageType.TEXT, "", {}
        if message.get("is_unsupported") is True:
            return MessageType.UNSUPPORTED, text, {"unsupported_type": "is_unsupported"}
        quick_reply = as_dict(message.get("quick_reply"))
        if "payload" in quick_reply:
            data = as_str(quick_reply.get("payload"))
            return MessageType.INTERACTIVE, text, {"reply_type": "quick_reply", "id": data, "title": text}
        attachments = [_attachment(a) for a in as_list(message.get("attachments")) if isinstance(a, dict)]
        if not attachments:
            if text:
                return MessageType.TEXT, text, {}
            return MessageType.UNSUPPORTED, "", {"unsupported_type": "empty"}
        # Until 2026-08-30 a sticker also arrives as an image attachment: the sticker wins.
        first = next(
            (a for a in attachments if a.get("sticker_id") or a["type"] == "sticker"), attachments[0]
        )
        payload = {k: v for k, v in first.items() if k != "type"}
        payload["attachments"] = attachments
        if first.get("sticker_id"):
            return MessageType.STICKER, text, payload
        if first["type"] in ATTACHMENT_TYPES:
            return ATTACHMENT_TYPES[first["type"]], text, payload
        if first["type"] == "fallback" and (text or first.get("url")):
            # A shared link.
            return MessageType.TEXT, text or first.get("url", ""), payload
        payload["unsupported_type"] = first["type"] or "unknown"
        return MessageType.UNSUPPORTED, text, payload

    def _postback(self, batch: ParsedBatch, ev: Event) -> None:
        postback = ev.raw.get("postback")
        if not isinstance(postback, dict) or not ev.sender:
            batch.problems.append(f"{ev.where}: postback without content or sender")
            return
        when = self._time(batch, ev)
        title, data = as_str(postback.get("title")), as_str(postback.get("payload"))
        # Standby apps get the title but not the payload.
        payload: dict[str, Any] = {"id": data, "payload": data, "title": title}
        if isinstance(postback.get("referral"), dict):
            payload["referral"] = postback["referral"]
        batch.messages.append(
            InboundMessage(
                routing_id=ev.routing or ev.recipient,
                contact_external_id=ev.sender,
                external_id=as_str(postback.get("mid")) or synthetic_id("postback", ev.sender, when, data),
                timestamp=when,
                type=MessageType.POSTBACK,
                text=title,
                payload=payload,
                raw=ev.raw,
                is_standby=ev.standby,
            )
        )

    def _reaction(self, batch: ParsedBatch, ev: Event) -> None:
        reaction = ev.raw.get("reaction")
        if not isinstance(reaction, dict) or not ev.sender:
            batch.problems.append(f"{ev.where}: reaction without content or sender")
            return
        when = self._time(batch, ev)
        target = as_str(reaction.get("mid"))
        action = as_str(reaction.get("action")) or "react"
        batch.messages.append(
            InboundMessage(
                routing_id=ev.routing or ev.recipient,
                contact_external_id=ev.sender,
                # Reactions carry no id of their own; a stable one lets redeliveries dedup.
                external_id=synthetic_id("reaction", ev.sender, target, action, when),
                timestamp=when,
                type=MessageType.REACTION,
                payload={
                    "message_id": target,
                    "emoji": as_str(reaction.get("emoji")),
                    "reaction": as_str(reaction.get("reaction")),
                    "action": action,
                },
                raw=ev.raw,
                is_standby=ev.standby,
            )
        )

    def _receipt(self, batch: ParsedBatch, ev: Event) -> None:
        key = "delivery" if "delivery" in ev.raw else "read"
        status = DeliveryStatus.DELIVERED if key == "delivery" else DeliveryStatus.READ
        receipt = ev.raw.get(key)
        if not isinstance(receipt, dict):
            batch.problems.append(f"{ev.where}.{key}: expected an object")
            return
        watermark = parse_timestamp(receipt.get("watermark"))
        mids = [as_str(m) for m in list_at(batch, receipt, "mids", f"{ev.where}.{key}") if as_str(m)]
        if as_str(receipt.get("mid")):  # Instagram names the message that was seen
            mids.append(as_str(receipt["mid"]))
        if not mids and watermark is None:
            batch.problems.append(f"{ev.where}.{key}: neither mids nor watermark")
            return
        # Messenger receipts without mids mean "everything before the watermark".
        for mid in mids or [None]:
            batch.statuses.append(
                StatusUpdate(
                    routing_id=ev.routing or ev.recipient,
                    external_id=mid,
                    status=status,
                    timestamp=ev.timestamp or watermark or now(),
                    contact_external_id=ev.sender,
                    watermark=watermark,
                    raw=ev.raw,
                )
            )

    def _time(self, batch: ParsedBatch, ev: Event) -> datetime:
        if ev.timestamp is None:
            batch.problems.append(f"{ev.where}.timestamp: invalid, using the time of parsing")
            return now()
        return ev.timestamp


def _attachment(attachment: dict[str, Any]) -> dict[str, Any]:
    """One attachment reduced to type, url, title, sticker_id and coordinates."""
    data = as_dict(attachment.get("payload"))
    out: dict[str, Any] = {"type": as_str(attachment.get("type"))}
    for key in ("url", "title"):
        if as_str(data.get(key)):
            out[key] = as_str(data[key])
    if as_str(data.get("sticker_id")):
        out["sticker_id"] = as_str(data["sticker_id"])
    if as_str(data.get("reel_video_id")):
        out["reel_video_id"] = as_str(data["reel_video_id"])
    coordinates = as_dict(data.get("coordinates"))
    if coordinates:
        out["latitude"] = as_float(coordinates.get("lat"))
        out["longitude"] = as_float(coordinates.get("long"))
    return out
