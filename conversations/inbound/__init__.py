"""Inbound: webhook events in, every message stored once, processing after commit.

Meta delivers at least once: it retries for up to 7 days and may deliver the
same payload concurrently (docs/meta-platform.md §6.1). The door stores the raw
body and answers; a task applies it (webhooks.py). The channel's message id is
unique per channel account, so a redelivery inserts nothing and enqueues
nothing. A bug while applying rolls back only the effects, and the event stays
`failed` for `manage.py replay_webhooks`.
"""

from conversations.inbound.cleaning import parse_json
from conversations.inbound.contacts import contact_identity_update, contact_resolve, contact_upsert
from conversations.inbound.receipts import status_update_apply
from conversations.inbound.storing import (
    Outcome,
    StoredMessage,
    conversation_open_get_or_create,
    inbound_item_apply,
    inbound_message_store,
)
from conversations.inbound.webhooks import (
    EventApplied,
    webhook_event_apply,
    webhook_event_replay,
    webhook_event_store,
    webhook_events_for_replay,
)

__all__ = [
    "EventApplied",
    "Outcome",
    "StoredMessage",
    "contact_identity_update",
    "contact_resolve",
    "contact_upsert",
    "conversation_open_get_or_create",
    "inbound_item_apply",
    "inbound_message_store",
    "parse_json",
    "status_update_apply",
    "webhook_event_apply",
    "webhook_event_replay",
    "webhook_event_store",
    "webhook_events_for_replay",
]
