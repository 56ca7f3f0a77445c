"""An old database migrates in place: each stored event is split into its businesses' parts."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("channels_app", "0002_webhook_received_for")]
AFTER = [("channels_app", "0003_webhook_event_parts")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _entry(page: str, mid: str, text: str) -> dict:
    return {
        "id": page,
        "time": 1767228000500,
        "messaging": [
            {
                "sender": {"id": "900000000000009"},
                "recipient": {"id": page},
                "timestamp": 1767228000312,
                "message": {"mid": mid, "text": text},
            }
        ],
    }


@pytest.mark.django_db(transaction=True)
def test_old_events_owned_by_their_first_business_are_split_per_business(alice, bob):
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE)
    Account = old.get_model("channels_app", "ChannelAccount")
    Event = old.get_model("channels_app", "WebhookEvent")
    bob_page = Account.objects.create(
        business_id=bob.business.pk, kind="messenger", external_id="222", name="Bob page"
    )
    Account.objects.create(business_id=alice.business.pk, kind="messenger", external_id="111", name="A")
    body = {
        "object": "page",
        "entry": [_entry("222", "m_b", "Bob's text"), _entry("111", "m_a", "card 4242")],
    }
    event = Event.objects.create(
        channel="messenger",
        body=json.dumps(body),
        business_id=bob.business.pk,
        channel_account=bob_page,
        status="processed",
    )
    unreadable = Event.objects.create(
        channel="messenger", body="[1, 2", business_id=bob.business.pk, status="failed"
    )

    try:
        new = _migrate(AFTER)
        Part = new.get_model("channels_app", "WebhookEventPart")
        parts = {part.business_id: part for part in Part.objects.filter(event_id=event.pk)}
        assert set(parts) == {alice.business.pk, bob.business.pk}
        assert "4242" not in parts[bob.business.pk].items and "Bob's text" in parts[bob.business.pk].items
        assert "4242" in parts[alice.business.pk].items and "Bob" not in parts[alice.business.pk].items
        assert parts[bob.business.pk].created_at == event.created_at
        kept = Part.objects.get(event_id=unreadable.pk)
        assert (kept.business_id, kept.status, kept.items) == (bob.business.pk, "failed", "{}")

        back = _migrate(BEFORE)
        restored = back.get_model("channels_app", "WebhookEvent").objects.get(pk=event.pk)
        assert restored.business_id is not None
    finally:
        _migrate(leaves)
