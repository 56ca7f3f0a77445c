"""WhatsApp Business Cloud API: webhook parsing and the /{phone-number-id}/messages send API.

Shapes and limits: docs/meta-platform.md §3 (webhooks) and §5.1 (sending).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import (
    ChannelCredentials,
    ChannelError,
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
    clean_errors,
    list_at,
    now,
    parse_timestamp,
    safely,
)
from .meta import MetaAdapter
from .text import split_tail, split_text, truncate, unique_titles

logger = logging.getLogger(__name__)

TEXT_LIMIT = 4096
BUTTONS_MAX = 3
BUTTON_TITLE_LIMIT = 20
BUTTON_ID_LIMIT = 256
BUTTON_BODY_LIMIT = 1024
LIST_BODY_LIMIT = 4096
LIST_BUTTON_LIMIT = 20
LIST_ROWS_MAX = 10
LIST_SECTIONS_MAX = 10
ROW_TITLE_LIMIT = 24
ROW_ID_LIMIT = 200
ROW_DESCRIPTION_LIMIT = 72
SECTION_TITLE_LIMIT = 24
HEADER_LIMIT = 60
FOOTER_LIMIT = 60
# Interactive messages need a body; a language-neutral one when the reply has no text.
EMPTY_BODY = "👇"

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


@dataclass(frozen=True, slots=True)
class ListRow:
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ListSection:
    title: str
    rows: Sequence[ListRow]


class WhatsAppAdapter(MetaAdapter):
    kind = "whatsapp"

    # Parsing

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
        names: dict[str, str] = {}
        for contact in list_at(batch, value, "contacts", f"{where}.value"):
            contact = as_dict(contact)
            wa_id = as_str(contact.get("wa_id"))
            if wa_id:
                names[wa_id] = as_str(as_dict(contact.get("profile")).get("name"))
        for k, item in enumerate(list_at(batch, value, key, f"{where}.value")):
            at = f"{where}.value.{key}[{k}]"
            safely(batch, at, self._message, batch, item, routing, names, at, echo)
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

    def _message(
        self, batch: ParsedBatch, item: Any, routing: str, names: dict[str, str], where: str, echo: bool
    ) -> None:
        if not isinstance(item, dict):
            batch.problems.append(f"{where}: expected an object")
            return
        external_id = as_str(item.get("id"))
        contact = as_str(item.get("to" if echo else "from"))
        if not external_id or not contact:
            batch.problems.append(f"{where}: message without id or sender")
            return
        timestamp = parse_timestamp(item.get("timestamp"))
        if timestamp is None:
            batch.problems.append(f"{where}.timestamp: invalid, using the time of parsing")
            timestamp = now()
        kind = as_str(item.get("type")) or next(
            (key for key in INFERABLE_TYPES if isinstance(item.get(key), dict | list)), ""
        )
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
                contact_name=names.get(contact, ""),
                external_id=external_id,
                timestamp=timestamp,
                type=mtype,
                text=text,
                payload=payload,
                reply_to_external_id=as_str(context.get("id")) or None,
                raw=item,
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
                contact_external_id=as_str(item.get("recipient_id")),
                error_code=first.get("code"),
                error_title=first.get("title", ""),
                error_message=first.get("details") or first.get("message", ""),
                callback_data=as_str(item.get("biz_opaque_callback_data")),
                raw=item,
            )
        )

    # Sending

    def send(self, account: ChannelCredentials, recipient: str, message: OutboundContent) -> list[SendResult]:
        """Render channel-neutral content: a template (its text is then not sent), or text
        with ≤3 reply buttons or a 4–10 row list (more options are listed in the text)."""
        if message.template is not None:
            template = message.template
            return [
                self.send_template(
                    account,
                    recipient,
                    template.name,
                    template.language,
                    template.components,
                    callback_data=message.callback_data,
                )
            ]
        replies = message.replies()
        text = message.text.strip()
        if len(replies) > LIST_ROWS_MAX:
            logger.warning(
                "too many quick replies for WhatsApp; sending them as text", extra={"count": len(replies)}
            )
            text = "\n".join([text, "", *(f"• {reply.title}" for reply in replies)]).strip()
            replies = []
        if not replies:
            return self.send_text(
                account, recipient, text, reply_to=message.reply_to, callback_data=message.callback_data
            )
        limit = BUTTON_BODY_LIMIT if len(replies) <= BUTTONS_MAX else LIST_BODY_LIMIT
        head, tail = split_tail(text, limit)
        results: list[SendResult] = []
        try:
            if head:
                results += self.send_text(
                    account, recipient, head, reply_to=message.reply_to, callback_data=message.callback_data
                )
            reply_to = None if head else message.reply_to
            if len(replies) <= BUTTONS_MAX:
                results.append(
                    self.send_buttons(
                        account,
                        recipient,
                        tail or EMPTY_BODY,
                        replies,
                        reply_to=reply_to,
                        callback_data=message.callback_data,
                    )
                )
            else:
                rows = [ListRow(id=reply.id, title=reply.title) for reply in replies]
                section = ListSection(title="", rows=rows)
                results.append(
                    self.send_list(
                        account,
                        recipient,
                        tail or EMPTY_BODY,
                        message.list_button,
                        [section],
                        reply_to=reply_to,
                        callback_data=message.callback_data,
                    )
                )
        except SendError as exc:
            exc.sent = (*results, *exc.sent)
            raise
        return results

    def send_text(
        self,
        account: ChannelCredentials,
        recipient: str,
        text: str,
        *,
        reply_to: str | None = None,
        preview_url: bool = False,
        callback_data: str | None = None,
    ) -> list[SendResult]:
        """Plain text, split into several messages above 4096 characters."""
        chunks = split_text(text, TEXT_LIMIT)
        if not chunks:
            raise SendError("empty_message", "nothing to send", permanent=True)
        results: list[SendResult] = []
        for index, chunk in enumerate(chunks):
            body = self._envelope(recipient, reply_to if index == 0 else None, callback_data)
            body.update(type="text", text={"body": chunk, "preview_url": preview_url})
            try:
                results.append(self._send(account, body))
            except SendError as exc:
                exc.sent = tuple(results)
                raise
        return results

    def send_buttons(
        self,
        account: ChannelCredentials,
        recipient: str,
        body: str,
        buttons: Sequence[QuickReply | tuple[str, str]],
        *,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        callback_data: str | None = None,
    ) -> SendResult:
        """Up to three reply buttons; titles are shortened to 20 characters and made unique."""
        replies = [b if isinstance(b, QuickReply) else QuickReply(*b) for b in buttons]
        if not 1 <= len(replies) <= BUTTONS_MAX:
            raise _invalid(f"reply buttons need 1 to {BUTTONS_MAX} buttons, got {len(replies)}")
        _check_body(body, BUTTON_BODY_LIMIT)
        ids = _ids([r.id or r.title for r in replies], BUTTON_ID_LIMIT)
        titles = unique_titles([r.title for r in replies], BUTTON_TITLE_LIMIT)
        interactive: dict[str, Any] = {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": id_, "title": title}}
                    for id_, title in zip(ids, titles, strict=True)
                ]
            },
        }
        _decorate(interactive, header, footer)
        message = self._envelope(recipient, reply_to, callback_data)
        message.update(type="interactive", interactive=interactive)
        return self._send(account, message)

    def send_list(
        self,
        account: ChannelCredentials,
        recipient: str,
        body: str,
        button: str,
        sections: Sequence[ListSection],
        *,
        header: str | None = None,
        footer: str | None = None,
        reply_to: str | None = None,
        callback_data: str | None = None,
    ) -> SendResult:
        """A list message: ≤10 sections, ≤10 rows in total, texts shortened to Meta's limits."""
        rows = [row for section in sections for row in section.rows]
        if not 1 <= len(sections) <= LIST_SECTIONS_MAX or not 1 <= len(rows) <= LIST_ROWS_MAX:
            raise _invalid(f"a list needs 1-{LIST_SECTIONS_MAX} sections and 1-{LIST_ROWS_MAX} rows in total")
        if len(sections) > 1 and not all(section.title.strip() for section in sections):
            raise _invalid("every section needs a title when a list has several")
        _check_body(body, LIST_BODY_LIMIT)
        ids = iter(_ids([row.id or row.title for row in rows], ROW_ID_LIMIT))
        titles = iter(unique_titles([row.title for row in rows], ROW_TITLE_LIMIT))
        rendered = []
        for section in sections:
            out_rows = []
            for row in section.rows:
                out_row = {"id": next(ids), "title": next(titles)}
                if row.description.strip():
                    out_row["description"] = truncate(row.description, ROW_DESCRIPTION_LIMIT)
                out_rows.append(out_row)
            out: dict[str, Any] = {"rows": out_rows}
            if section.title.strip():
                out = {"title": truncate(section.title, SECTION_TITLE_LIMIT), **out}
            rendered.append(out)
        interactive: dict[str, Any] = {
            "type": "list",
            "body": {"text": body},
            "action": {"button": truncate(button, LIST_BUTTON_LIMIT) or "Menu", "sections": rendered},
        }
        _decorate(interactive, header, footer)
        message = self._envelope(recipient, reply_to, callback_data)
        message.update(type="interactive", interactive=interactive)
        return self._send(account, message)

    def send_template(
        self,
        account: ChannelCredentials,
        recipient: str,
        name: str,
        language: str,
        components: Sequence[dict[str, Any]] = (),
        *,
        callback_data: str | None = None,
    ) -> SendResult:
        """An approved template: the only message allowed outside the 24-hour window."""
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = list(components)
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "to": recipient,
            "type": "template",
            "template": template,
        }
        if callback_data:
            body["biz_opaque_callback_data"] = callback_data[:512]
        return self._send(account, body)

    def mark_read(
        self, account: ChannelCredentials, message_id: str, *, typing: bool = True
    ) -> dict[str, Any]:
        """Blue ticks on the customer's message and, optionally, "typing…" until we reply (~25 s)."""
        body: dict[str, Any] = {"messaging_product": "whatsapp", "status": "read", "message_id": message_id}
        if typing:
            body["typing_indicator"] = {"type": "text"}
        return self.post(account, f"{account.external_id}/messages", body)

    def acknowledge(self, account: ChannelCredentials, *, recipient: str, message_id: str) -> None:
        self.mark_read(account, message_id, typing=True)

    def _envelope(
        self, recipient: str, reply_to: str | None, callback_data: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient,
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        if callback_data:
            body["biz_opaque_callback_data"] = callback_data[:512]
        return body

    def _send(self, account: ChannelCredentials, body: dict[str, Any]) -> SendResult:
        data = self.post(account, f"{account.external_id}/messages", body)
        external_id = as_str(as_dict((as_list(data.get("messages")) or [None])[0]).get("id"))
        if not external_id:
            raise SendError("invalid_response", "WhatsApp answered without a message id", permanent=True)
        return SendResult(external_id=external_id, raw=data)


def _malformed(kind: str) -> Content:
    return MessageType.UNSUPPORTED, "", {"unsupported_type": kind, "malformed": True}


def _unsupported(kind: str, body: Any) -> Content:
    # order, request_welcome, ephemeral and whatever Meta adds next: keep what came.
    payload: dict[str, Any] = {"unsupported_type": kind or "unknown"}
    if isinstance(body, dict):
        payload["content"] = body
    return MessageType.UNSUPPORTED, "", payload


def _invalid(message: str) -> SendError:
    return SendError("invalid_content", message, permanent=True)


def _check_body(body: str, limit: int) -> None:
    if not body.strip():
        raise _invalid("an interactive message needs a body")
    if len(body) > limit:
        raise _invalid(f"interactive body is {len(body)} characters; the limit is {limit}")


def _ids(ids: list[str], limit: int) -> list[str]:
    out = [id_[:limit] for id_ in ids]
    if len(set(out)) != len(out):
        raise _invalid("reply ids must be unique")
    return out


def _decorate(interactive: dict[str, Any], header: str | None, footer: str | None) -> None:
    if header:
        interactive["header"] = {"type": "text", "text": truncate(header, HEADER_LIMIT)}
    if footer:
        interactive["footer"] = {"text": truncate(footer, FOOTER_LIMIT)}
