"""WhatsApp outbound: the /{phone-number-id}/messages send API (text, buttons, lists, templates).

Limits: docs/meta-platform.md §5.1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..base import ChannelCredentials, OutboundContent, QuickReply, ReplyDraft, SendError, SendResult
from ..payload import as_dict, as_list, as_str
from ..text import split_tail, split_text, truncate, unique_titles
from ..windows import whatsapp_compose
from .identity import is_bsuid

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


@dataclass(frozen=True, slots=True)
class ListRow:
    id: str
    title: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ListSection:
    title: str
    rows: Sequence[ListRow]


class WhatsAppSending:
    """The sending half of WhatsAppAdapter; MetaAdapter provides `post`."""

    def compose(self, draft: ReplyDraft) -> OutboundContent:
        return whatsapp_compose(draft)

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
                account,
                recipient,
                text,
                reply_to=message.reply_to,
                callback_data=message.callback_data,
                skip=message.parts_sent,
            )
        limit = BUTTON_BODY_LIMIT if len(replies) <= BUTTONS_MAX else LIST_BODY_LIMIT
        head, tail = split_tail(text, limit)
        head_parts = len(split_text(head, TEXT_LIMIT)) if head else 0
        if message.parts_sent > head_parts:
            return []  # the buttons went too: everything arrived
        results: list[SendResult] = []
        try:
            if head and message.parts_sent < head_parts:
                results += self.send_text(
                    account,
                    recipient,
                    head,
                    reply_to=message.reply_to,
                    callback_data=message.callback_data,
                    skip=message.parts_sent,
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
        skip: int = 0,
    ) -> list[SendResult]:
        """Plain text, split into several messages above 4096 characters (the first `skip` not sent)."""
        chunks = split_text(text, TEXT_LIMIT)
        if not chunks:
            raise SendError("empty_message", "nothing to send", permanent=True)
        results: list[SendResult] = []
        for index, chunk in enumerate(chunks):
            if index < skip:
                continue
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
            **address(recipient),
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
            **address(recipient),
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


def address(recipient: str) -> dict[str, str]:
    """`to` for a phone number; `recipient` for a BSUID, when the customer shares no number.

    Meta takes either (with both, `to` wins); a contact is addressed by number when known.
    """
    return {"recipient": recipient} if is_bsuid(recipient) else {"to": recipient}


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
