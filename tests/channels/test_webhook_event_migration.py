"""An old database migrates in place: each stored event is split into its businesses' parts."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [
    ("channels_app", "0002_webhook_received_for"),
    ("conversations", "0002_conversation_activity_index"),
]
AFTER = [("channels_app", "0003_webhook_event_parts")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _stored(apps, account, mid: str, *, direction: str = "in", customer: str = "900000000000009"):
    """A message as the old code stored it: the evidence of whose an old item was."""
    Contact = apps.get_model("conversations", "Contact")
    Conversation = apps.get_model("conversations", "Conversation")
    Message = apps.get_model("conversations", "Message")
    contact, _ = Contact.objects.get_or_create(
        business_id=account.business_id, channel_account=account, external_id=customer
    )
    conversation, _ = Conversation.objects.get_or_create(
        business_id=account.business_id, channel_account=account, contact=contact
    )
    return Message.objects.create(
        business_id=account.business_id,
        conversation=conversation,
        channel_account=account,
        direction=direction,
        author="customer" if direction == "in" else "ai",
        status="answered" if direction == "in" else "sent",
        external_id=mid,
    )


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
    alice_page = Account.objects.create(
        business_id=alice.business.pk, kind="messenger", external_id="111", name="A"
    )
    _stored(old, bob_page, "m_b")
    _stored(old, alice_page, "m_a")
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


def _delivery(page: str, mid: str) -> dict:
    return {
        "id": page,
        "time": 1767228000500,
        "messaging": [
            {
                "sender": {"id": "900000000000009"},
                "recipient": {"id": page},
                "timestamp": 1767228000400,
                "delivery": {"mids": [mid], "watermark": 1767228000000},
            }
        ],
    }


@pytest.mark.django_db(transaction=True)
def test_an_old_event_stays_with_the_business_that_received_it_after_its_id_moved(alice, bob):
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE)
    Account = old.get_model("channels_app", "ChannelAccount")
    Event = old.get_model("channels_app", "WebhookEvent")
    bob_page = Account.objects.create(
        business_id=bob.business.pk, kind="messenger", external_id="222", name="Bob page"
    )
    body = {
        "object": "page",
        "entry": [_entry("222", "m_bob", "Bob's customer asks"), _delivery("222", "m_bob_reply")],
    }
    event = Event.objects.create(
        channel="messenger", body=json.dumps(body), business_id=bob.business.pk, channel_account=bob_page
    )
    _stored(old, bob_page, "m_bob")
    _stored(old, bob_page, "m_bob_reply", direction="out")
    # Since then Bob moved to another page and Alice connected page 222.
    bob_page.external_id = "333"
    bob_page.save(update_fields=["external_id"])
    Account.objects.create(business_id=alice.business.pk, kind="messenger", external_id="222", name="A")

    try:
        new = _migrate(AFTER)
        Part = new.get_model("channels_app", "WebhookEventPart")
        parts = {part.business_id: part for part in Part.objects.filter(event_id=event.pk)}
        assert set(parts) == {bob.business.pk}
        items = json.loads(parts[bob.business.pk].items)
        assert [raw["message"]["mid"] for raw in items["messages"]] == ["m_bob"]
        assert [raw["delivery"]["mids"] for raw in items["statuses"]] == [["m_bob_reply"]]
        assert parts[bob.business.pk].channel_account_id == bob_page.pk
    finally:
        _migrate(leaves)
