"""Facebook Messenger: `object: "page"` webhooks and the Send API.

Instagram messaging uses the same event shapes and Send API, so
InstagramAdapter extends this class. Shapes and limits:
docs/meta-platform.md §4 (webhooks) and §5.2-5.3 (sending).
"""

from __future__ import annotations

from typing import ClassVar

from ..meta import MetaAdapter
from ..text import Unit
from .parse import ATTACHMENT_TYPES, IGNORED_EVENTS, Event, MessengerParsing
from .send import EMPTY_TEXT, QUICK_REPLY_PAYLOAD_LIMIT, SENDER_ACTIONS, MessengerSending


class MessengerAdapter(MessengerParsing, MessengerSending, MetaAdapter):
    kind = "messenger"
    objects: ClassVar[tuple[str, ...]] = ("page",)
    # "text must be UTF-8 and under 2000 characters"
    text_limit: ClassVar[int] = 1999
    text_unit: ClassVar[Unit] = "chars"
    quick_replies_max: ClassVar[int] = 13
    quick_reply_title_limit: ClassVar[int] = 20


__all__ = [
    "ATTACHMENT_TYPES",
    "EMPTY_TEXT",
    "IGNORED_EVENTS",
    "QUICK_REPLY_PAYLOAD_LIMIT",
    "SENDER_ACTIONS",
    "Event",
    "MessengerAdapter",
]
