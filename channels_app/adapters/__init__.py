"""Channel adapters, picked by ChannelAccount.kind from an explicit registry.

Adapters import nothing from models or `conversations`: webhook views and
tasks pass payload dicts and ChannelCredentials in, and get dataclasses back.
"""

from __future__ import annotations

from .api import ApiAdapter
from .base import (
    ChannelAdapter,
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
    TemplateMessage,
)
from .instagram import InstagramAdapter
from .messenger import MessengerAdapter
from .whatsapp import WhatsAppAdapter

# Keys are ChannelKind values (channels_app.models), spelled out to keep models out.
ADAPTERS: dict[str, ChannelAdapter] = {
    "whatsapp": WhatsAppAdapter(),
    "messenger": MessengerAdapter(),
    "instagram": InstagramAdapter(),
    "api": ApiAdapter(),
}


def get_adapter(kind: str) -> ChannelAdapter:
    try:
        return ADAPTERS[kind]
    except KeyError:
        raise LookupError(f"no channel adapter for kind {kind!r}") from None


__all__ = [
    "ADAPTERS",
    "ApiAdapter",
    "ChannelAdapter",
    "ChannelCredentials",
    "ChannelError",
    "DeliveryStatus",
    "InboundMessage",
    "InstagramAdapter",
    "MessageType",
    "MessengerAdapter",
    "OutboundContent",
    "ParsedBatch",
    "QuickReply",
    "SendError",
    "SendResult",
    "StatusUpdate",
    "TemplateMessage",
    "WhatsAppAdapter",
    "get_adapter",
]
