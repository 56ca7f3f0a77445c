"""The channel adapter interface: typed inbound items, outbound content, SendError.

Adapters are pure: they know a provider's wire format and nothing about our
models, so webhook views and Celery tasks hand them plain dicts and small
credential objects and get dataclasses back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ClassVar, Protocol

logger = logging.getLogger(__name__)


class MessageType(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    DOCUMENT = "document"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACTS = "contacts"
    INTERACTIVE = "interactive"
    BUTTON = "button"
    POSTBACK = "postback"
    REACTION = "reaction"
    UNSUPPORTED = "unsupported"


class DeliveryStatus(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ChannelCredentials:
    """What an adapter needs to send for one account, so it never imports models."""

    external_id: str
    access_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class CustomerIdentity:
    """The ids a channel shares for a customer, each only when present.

    WhatsApp (since 2026): a business-scoped user id (BSUID) on every message,
    the phone number only when the user shares it, a username when they have
    one, and a parent BSUID for linked business portfolios.
    """

    phone: str = ""
    bsuid: str = ""
    parent_bsuid: str = ""
    username: str = ""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message a customer sent (or, with `is_echo`, one the account sent elsewhere).

    `routing_id` picks the channel account (WhatsApp phone_number_id, Page id,
    Instagram account id); `external_id` is the provider's message id, the
    dedup key because Meta redelivers. `payload` holds the type-specific
    fields (media id, location, reply id, reaction target, ...).
    """

    routing_id: str
    contact_external_id: str
    external_id: str
    timestamp: datetime
    type: MessageType
    text: str = ""
    contact_name: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    reply_to_external_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    is_echo: bool = False
    echo_app_id: str | None = None
    is_standby: bool = False
    is_deleted: bool = False
    identity: CustomerIdentity | None = None
    # The customer edited (new content in this item) or revoked an earlier message.
    edit_of: str = ""
    revoke_of: str = ""


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A receipt for a message WE sent.

    Messenger read/delivery receipts may name no message: then `external_id`
    is None and `watermark` means "everything sent to this contact before it".
    """

    routing_id: str
    external_id: str | None
    status: DeliveryStatus
    timestamp: datetime
    contact_external_id: str = ""
    error_code: int | None = None
    error_title: str = ""
    error_message: str = ""
    watermark: datetime | None = None
    callback_data: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ChannelError:
    """An asynchronous error reported for the account, not tied to one message."""

    routing_id: str
    code: int | None
    title: str = ""
    message: str = ""
    details: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class IdentityUpdate:
    """A customer's ids changed (a new number means a new BSUID): the contact follows them."""

    routing_id: str
    previous: CustomerIdentity
    current: CustomerIdentity
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class RejectedItem:
    """An item addressed to an account that cannot be stored as it is (e.g. no sender at all).

    Unlike a parse problem it is not silent: the event is marked failed with the
    reason, so `replay_webhooks` can apply it after a fix.
    """

    routing_id: str
    reason: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(slots=True)
class ParsedBatch:
    """Everything one webhook POST carried.

    `problems` lists items the parser could not understand (the caller logs
    them and keeps the raw event); `ignored` lists well-formed events we do
    not handle (other webhook fields, optins, handover notices).
    """

    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    errors: list[ChannelError] = field(default_factory=list)
    identity_updates: list[IdentityUpdate] = field(default_factory=list)
    rejected: list[RejectedItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QuickReply:
    id: str
    title: str


@dataclass(frozen=True, slots=True)
class TemplateMessage:
    """A WhatsApp approved template: the only thing allowed outside the 24-hour window."""

    name: str
    language: str
    components: Sequence[dict[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class OutboundContent:
    """What to say, independent of the channel; each adapter renders it its own way.

    `quick_replies` are (id, title) pairs: WhatsApp buttons or a list,
    Messenger/Instagram quick replies. The id comes back as `payload["id"]`
    on the customer's tap. `messaging_tag` (e.g. HUMAN_AGENT) lets staff
    answer on Messenger/Instagram outside the 24-hour window.
    """

    text: str = ""
    quick_replies: Sequence[QuickReply | tuple[str, str]] = ()
    template: TemplateMessage | None = None
    reply_to: str | None = None
    messaging_tag: str | None = None
    list_button: str = "Menu"
    # Our own message id. Meta hands it back (WhatsApp statuses as
    # biz_opaque_callback_data, Messenger/Instagram echoes as metadata), so a
    # receipt that overtakes the send response still finds its message.
    callback_data: str | None = None
    # A retry after a split message failed part-way: the first `parts_sent` parts
    # reached the customer already and are not sent again.
    parts_sent: int = 0

    def replies(self) -> list[QuickReply]:
        return [
            r if isinstance(r, QuickReply) else QuickReply(id=r[0], title=r[1]) for r in self.quick_replies
        ]


@dataclass(frozen=True, slots=True)
class ReplyDraft:
    """A reply before the channel's rules: the adapter's `compose` turns it into what may be sent.

    `since_customer` is the time since the customer's last message (None: they
    never wrote), which decides the channel's messaging window; `from_staff`
    marks a person's answer (Messenger's HUMAN_AGENT tag); `window_template` is
    the business's approved WhatsApp template for outside the 24-hour window.
    """

    text: str
    quick_replies: Sequence[QuickReply] = ()
    callback_data: str | None = None
    from_staff: bool = False
    since_customer: timedelta | None = None
    window_template: TemplateMessage | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    external_id: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


class SendError(Exception):
    """A send the provider refused or we could not complete.

    `permanent` says whether retrying can help; `retry_after` (seconds) is a
    hint for the backoff; `needs_reauth` means the token is dead (Graph 190).
    `sent` holds the parts of a split message that did go out before the
    failure, so a retry can skip them instead of sending them twice.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        needs_reauth: bool = False,
        http_status: int | None = None,
        subcode: int | None = None,
        fbtrace_id: str = "",
        sent: Sequence[SendResult] = (),
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.needs_reauth = needs_reauth
        self.http_status = http_status
        self.subcode = subcode
        self.fbtrace_id = fbtrace_id
        self.sent = tuple(sent)

    @property
    def transient(self) -> bool:
        return not self.permanent


class ChannelAdapter(Protocol):
    kind: ClassVar[str]
    signed: ClassVar[bool]

    def verify_signature(self, raw_body: bytes, header: str | None, app_secret: str) -> bool: ...

    def parse(self, payload: Any) -> ParsedBatch: ...

    def send(
        self, account: ChannelCredentials, recipient: str, message: OutboundContent
    ) -> list[SendResult]: ...

    def acknowledge(self, account: ChannelCredentials, *, recipient: str, message_id: str) -> None:
        """Show the customer their message was seen and a reply is being typed (best effort)."""
        ...

    def compose(self, draft: ReplyDraft) -> OutboundContent:
        """What may be sent for `draft` under the channel's window rules; SendError (permanent) if nothing."""
        ...
