"""Instagram messaging: Messenger's event shapes and Send API with Instagram's limits.

Differences that matter (docs/meta-platform.md §4.2, §4.5, §5.3): text is at
most 1000 UTF-8 *bytes*; messages can be unsent (`is_deleted`); reads name a
message (`read.mid`) instead of a watermark; story replies; and the dashboard's
"Test" button posts a `changes[]` payload while real DMs arrive as `messaging[]`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import ChannelCredentials, ParsedBatch
from .messenger import MessengerAdapter
from .payload import as_dict
from .text import Unit


class InstagramAdapter(MessengerAdapter):
    kind = "instagram"
    # "instagram" in Messenger-Platform docs; the Facebook-Login variant may say "page".
    # Routing uses entry.id either way.
    objects: ClassVar[tuple[str, ...]] = ("instagram", "page")
    text_limit: ClassVar[int] = 1000
    text_unit: ClassVar[Unit] = "bytes"
    # Instagram-Login setups talk to graph.instagram.com; unset, META_GRAPH_URL is used.
    graph_url_setting: ClassVar[str] = "META_INSTAGRAM_GRAPH_URL"

    def messages_path(self, account: ChannelCredentials) -> str:
        # With a Page token (Facebook Login) `me` is the Page linked to the IG
        # account; with an Instagram user token it is the IG account itself.
        return "me/messages"

    def _change(self, batch: ParsedBatch, change: Any, routing: str, where: str) -> None:
        change = as_dict(change)
        value = change.get("value")
        if change.get("field") == "messages" and isinstance(value, dict):
            # The dashboard test payload: one messaging-style event in `value`.
            self._event(batch, value, routing, f"{where}.value", False)
        else:
            batch.ignored.append(f"{where}: field {change.get('field')!r}")
