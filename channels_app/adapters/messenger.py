"""Facebook Messenger: `object: "page"` webhooks and the Send API.

Instagram messaging uses the same event shapes and Send API, so
InstagramAdapter extends this class. Shapes and limits:
docs/meta-platform.md §4 (webhooks) and §5.2-5.3 (sending).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from .base import (
    ChannelCredentials,
    DeliveryStatus,
    InboundMessage,
    MessageType,
    OutboundContent,
    ParsedBatch,
    QuickReply,
    SendError,
    SendResult,
    StatusUpdate,
    as_dict,
    as_float,
    as_list,
    as_str,
    list_at,
    now,
    parse_timestamp,
    safely,
    synthetic_id,
)
from .meta import MetaAdapter
from .text import Unit, split_text, truncate

logger = logging.getLogger(__name__)

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
SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
QUICK_REPLY_PAYLOAD_LIMIT = 1000
# Quick replies need a message; a language-neutral one when the reply has no text.
EMPTY_TEXT = "👇"


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


class MessengerAdapter(MetaAdapter):
    kind = "messenger"
    objects: ClassVar[tuple[str, ...]] = ("page",)
    # "text must be UTF-8 and under 2000 characters"
    text_limit: ClassVar[int] = 1999
    text_unit: ClassVar[Unit] = "chars"
    quick_replies_max: ClassVar[int] = 13
    quick_reply_title_limit: ClassVar[int] = 20

    # Parsing

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

    # Sending

    def messages_path(self, account: ChannelCredentials) -> str:
        # Addressing the Page explicitly works with Page and system-user tokens alike.
        return f"{account.external_id}/messages"

    def send(self, account: ChannelCredentials, recipient: str, message: OutboundContent) -> list[SendResult]:
        """Text split to the channel's limit, with quick replies on the last part."""
        text = message.text.strip()
        if message.template is not None and not text:
            raise SendError("invalid_content", "templates are WhatsApp-only", permanent=True)
        replies = message.replies()
        if len(replies) > self.quick_replies_max:
            logger.warning("too many quick replies; sending them as text", extra={"count": len(replies)})
            text = "\n".join([text, "", *(f"• {reply.title}" for reply in replies)]).strip()
            replies = []
        return self.send_text(
            account,
            recipient,
            text or (EMPTY_TEXT if replies else ""),
            quick_replies=replies,
            tag=message.messaging_tag,
            metadata=message.callback_data,
        )

    def send_text(
        self,
        account: ChannelCredentials,
        recipient: str,
        text: str,
        *,
        quick_replies: Sequence[QuickReply | tuple[str, str]] = (),
        tag: str | None = None,
        metadata: str | None = None,
    ) -> list[SendResult]:
        """RESPONSE messages (MESSAGE_TAG with `tag`, e.g. HUMAN_AGENT outside the 24-hour window)."""
        chunks = split_text(text, self.text_limit, unit=self.text_unit)
        if not chunks:
            raise SendError("empty_message", "nothing to send", permanent=True)
        replies = self._quick_replies(quick_replies)
        results: list[SendResult] = []
        for index, chunk in enumerate(chunks):
            content: dict[str, Any] = {"text": chunk}
            if metadata:
                content["metadata"] = metadata[:999]
            if replies and index == len(chunks) - 1:
                content["quick_replies"] = replies
            body: dict[str, Any] = {
                "recipient": {"id": recipient},
                "messaging_type": "MESSAGE_TAG" if tag else "RESPONSE",
                "message": content,
            }
            if tag:
                body["tag"] = tag
            try:
                results.append(self._send(account, body))
            except SendError as exc:
                exc.sent = tuple(results)
                raise
        return results

    def sender_action(self, account: ChannelCredentials, recipient: str, action: str) -> dict[str, Any]:
        """typing_on / typing_off / mark_seen: a request of its own, never combined with a message."""
        if action not in SENDER_ACTIONS:
            raise SendError("invalid_content", f"unknown sender action {action!r}", permanent=True)
        body = {"recipient": {"id": recipient}, "sender_action": action}
        return self.post(account, self.messages_path(account), body)

    def acknowledge(self, account: ChannelCredentials, *, recipient: str, message_id: str) -> None:
        # Two requests: a sender action cannot be combined with anything else.
        self.sender_action(account, recipient, "mark_seen")
        self.sender_action(account, recipient, "typing_on")

    def _quick_replies(self, quick_replies: Sequence[QuickReply | tuple[str, str]]) -> list[dict[str, str]]:
        replies = [r if isinstance(r, QuickReply) else QuickReply(*r) for r in quick_replies]
        if len(replies) > self.quick_replies_max:
            raise SendError(
                "invalid_content", f"at most {self.quick_replies_max} quick replies", permanent=True
            )
        return [
            {
                "content_type": "text",
                "title": truncate(reply.title, self.quick_reply_title_limit) or str(index),
                "payload": (reply.id or reply.title)[:QUICK_REPLY_PAYLOAD_LIMIT],
            }
            for index, reply in enumerate(replies, start=1)
        ]

    def _send(self, account: ChannelCredentials, body: dict[str, Any]) -> SendResult:
        data = self.post(account, self.messages_path(account), body)
        external_id = as_str(data.get("message_id"))
        if not external_id:
            raise SendError("invalid_response", f"{self.kind} answered without a message_id", permanent=True)
        return SendResult(external_id=external_id, raw=data)


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
