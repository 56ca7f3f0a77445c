"""Messenger and Instagram outbound: the Send API (text, quick replies, sender actions).

Limits: docs/meta-platform.md §5.2-5.3.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ..base import ChannelCredentials, OutboundContent, QuickReply, ReplyDraft, SendError, SendResult
from ..payload import as_str
from ..text import split_text, truncate
from ..windows import messenger_compose

logger = logging.getLogger(__name__)

SENDER_ACTIONS = ("typing_on", "typing_off", "mark_seen")
QUICK_REPLY_PAYLOAD_LIMIT = 1000
# Quick replies need a message; a language-neutral one when the reply has no text.
EMPTY_TEXT = "👇"


class MessengerSending:
    """The sending half of MessengerAdapter; the adapter sets the limits, MetaAdapter provides `post`."""

    def compose(self, draft: ReplyDraft) -> OutboundContent:
        return messenger_compose(draft)

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
            skip=message.parts_sent,
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
        skip: int = 0,
    ) -> list[SendResult]:
        """RESPONSE messages (MESSAGE_TAG with `tag`, e.g. HUMAN_AGENT outside the 24-hour window).

        The first `skip` parts of a split text reached the customer before: they are not sent again.
        """
        chunks = split_text(text, self.text_limit, unit=self.text_unit)
        if not chunks:
            raise SendError("empty_message", "nothing to send", permanent=True)
        replies = self._quick_replies(quick_replies)
        results: list[SendResult] = []
        for index, chunk in enumerate(chunks):
            if index < skip:
                continue
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
