"""The generic API channel: integrators POST customer messages and poll for replies.

Requests are authenticated by the business API key in DRF, so there is no
body signature; "sending" only mints an id, because the client fetches the
reply from the API instead of us pushing it anywhere.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from .base import (
    ChannelCredentials,
    InboundMessage,
    MessageType,
    OutboundContent,
    ParsedBatch,
    ReplyDraft,
    SendError,
    SendResult,
)
from .payload import as_str, now, synthetic_id
from .windows import unlimited_compose

CONTACT_LIMIT = 128
NAME_LIMIT = 200
CLIENT_ID_LIMIT = 200


def new_id() -> str:
    return f"api.{uuid.uuid4().hex}"


class ApiAdapter:
    kind: ClassVar[str] = "api"
    signed: ClassVar[bool] = False

    def compose(self, draft: ReplyDraft) -> OutboundContent:
        return unlimited_compose(draft)

    def verify_signature(self, raw_body: bytes, header: str | None, app_secret: str) -> bool:
        """Always False: nothing signs API-channel bodies, so this must never admit one.

        The API key check in DRF is what authenticates these requests; if this
        adapter is ever wired to the Meta webhook view by mistake it fails closed.
        """
        return False

    def parse(self, payload: Any) -> ParsedBatch:
        """{contact, text, name?, client_message_id?} as one inbound text message.

        `routing_id` is empty: the API view already knows the business's API
        channel account. A client_message_id is scoped to the contact, so two
        customers' "1" never collide while a retry of the same one dedups.
        """
        batch = ParsedBatch()
        if not isinstance(payload, dict):
            batch.problems.append(f"payload: expected an object, got {type(payload).__name__}")
            return batch
        contact = payload.get("contact")
        contact = contact.strip() if isinstance(contact, str) else ""
        text = payload.get("text")
        name = payload.get("name")
        client_id = payload.get("client_message_id")
        if not contact or len(contact) > CONTACT_LIMIT:
            batch.problems.append(f"contact: required, a string of at most {CONTACT_LIMIT} characters")
        if not isinstance(text, str) or not text.strip():
            batch.problems.append("text: required, a non-empty string")
        if name is not None and (not isinstance(name, str) or len(name) > NAME_LIMIT):
            batch.problems.append(f"name: a string of at most {NAME_LIMIT} characters")
        if client_id is not None and (not as_str(client_id) or len(as_str(client_id)) > CLIENT_ID_LIMIT):
            batch.problems.append(f"client_message_id: a string of at most {CLIENT_ID_LIMIT} characters")
        if batch.problems:
            return batch
        assert isinstance(text, str)
        batch.messages.append(
            InboundMessage(
                routing_id="",
                contact_external_id=contact,
                contact_name=as_str(name).strip(),
                external_id=synthetic_id("client", contact, as_str(client_id))
                if client_id is not None
                else new_id(),
                timestamp=now(),
                type=MessageType.TEXT,
                text=text,
                payload={"client_message_id": as_str(client_id)} if client_id is not None else {},
                raw=payload,
            )
        )
        return batch

    def send(self, account: ChannelCredentials, recipient: str, message: OutboundContent) -> list[SendResult]:
        if not message.text.strip() and not message.quick_replies:
            raise SendError("empty_message", "nothing to send", permanent=True)
        return [SendResult(external_id=new_id(), raw={})]

    def acknowledge(self, account: ChannelCredentials, *, recipient: str, message_id: str) -> None:
        """Nothing to show: API clients poll for the reply."""
