"""WhatsApp Business Cloud API: webhook parsing and the /{phone-number-id}/messages send API.

Shapes and limits: docs/meta-platform.md §3 (webhooks) and §5.1 (sending).
"""

from __future__ import annotations

from ..meta import MetaAdapter
from .parse import INFERABLE_TYPES, MEDIA_TYPES, STATUSES, WhatsAppParsing
from .send import (
    BUTTON_BODY_LIMIT,
    BUTTONS_MAX,
    EMPTY_BODY,
    LIST_BODY_LIMIT,
    LIST_ROWS_MAX,
    TEXT_LIMIT,
    ListRow,
    ListSection,
    WhatsAppSending,
)


class WhatsAppAdapter(WhatsAppParsing, WhatsAppSending, MetaAdapter):
    kind = "whatsapp"


__all__ = [
    "BUTTONS_MAX",
    "BUTTON_BODY_LIMIT",
    "EMPTY_BODY",
    "INFERABLE_TYPES",
    "LIST_BODY_LIMIT",
    "LIST_ROWS_MAX",
    "MEDIA_TYPES",
    "STATUSES",
    "TEXT_LIMIT",
    "ListRow",
    "ListSection",
    "WhatsAppAdapter",
]
