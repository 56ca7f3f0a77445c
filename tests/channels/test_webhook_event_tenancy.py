"""A webhook POST may batch several businesses' customers: each business sees only its own items."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, TestCase
from django.utils import timezone

from businesses.services import membership_add
from channels_app.models import ChannelKind, WebhookEvent, WebhookEventPart, WebhookEventStatus
from conversations.inbound import storing
from conversations.models import Message
from tests.admin import admin_url
from tests.channels.webhook_helpers import last_event, make_account, post_json

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("meta_app")]

ALICE_PAGE = "111000111000111"
BOB_PAGE = "222000222000222"
ALICE_SECRET_TEXT = "Alice's customer: my card ends in 4242"
BOB_TEXT = "Bob's customer: is the garage open?"


def _messaging(page: str, sender: str, mid: str, text: str) -> dict:
    return {
        "id": page,
        "time": 1767228000500,
        "messaging": [
            {
                "sender": {"id": sender},
                "recipient": {"id": page},
                "timestamp": 1767228000312,
                "message": {"mid": mid, "text": text},
            }
        ],
    }


# Bob's page first: the event used to belong to the business of its first routed item.
BATCH = {
    "object": "page",
    "entry": [
        _messaging(BOB_PAGE, "900000000000001", "m_bob_1", BOB_TEXT),
        _messaging(ALICE_PAGE, "900000000000002", "m_alice_1", ALICE_SECRET_TEXT),
    ],
}


@pytest.fixture
def pages(alice, bob):
    return {
        "alice": make_account(alice.business, ChannelKind.MESSENGER, ALICE_PAGE),
        "bob": make_account(bob.business, ChannelKind.MESSENGER, BOB_PAGE),
    }


@pytest.fixture
def bob_viewer(bob):
    membership, _ = membership_add(
        business=bob.business, email="bobs-viewer@example.com", role="viewer", password="pw-v"
    )
    return membership.user


def _login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_batched_event_is_split_into_one_part_per_business(alice, bob, pages):
    assert post_json("messenger", BATCH).status_code == 200

    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    parts = {part.business_id: part for part in event.parts.all()}
    assert set(parts) == {alice.business.pk, bob.business.pk}
    assert ALICE_SECRET_TEXT in parts[alice.business.pk].items
    assert BOB_TEXT not in parts[alice.business.pk].items
    assert BOB_TEXT in parts[bob.business.pk].items
    assert ALICE_SECRET_TEXT not in parts[bob.business.pk].items
    assert parts[bob.business.pk].channel_account == pages["bob"]
    assert Message.objects.get(external_id="m_alice_1").channel_account == pages["alice"]
    assert Message.objects.get(external_id="m_bob_1").channel_account == pages["bob"]


def test_bobs_viewer_never_reads_alices_items_in_the_admin(alice, bob, pages, bob_viewer):
    post_json("messenger", BATCH)
    event = last_event()
    bobs_part = event.parts.get(business=bob.business)
    alices_part = event.parts.get(business=alice.business)
    client = _login(bob_viewer)

    listing = client.get(admin_url(WebhookEventPart, "changelist"))
    page = client.get(admin_url(bobs_part, "change"))

    assert listing.status_code == 200
    assert admin_url(bobs_part, "change") in listing.content.decode()
    assert admin_url(alices_part, "change") not in listing.content.decode()
    assert page.status_code == 200
    html = page.content.decode()
    assert "garage open" in html
    assert "4242" not in html and ALICE_PAGE not in html and "m_alice_1" not in html
    assert client.get(admin_url(alices_part, "change")).status_code == 404
    # The raw body is a platform record: no tenant page shows it.
    assert client.get(admin_url(WebhookEvent, "changelist")).status_code == 403
    assert client.get(admin_url(event, "change")).status_code == 403
    index = client.get("/admin/").content.decode()
    assert admin_url(WebhookEvent, "changelist") not in index


def test_the_platform_operator_reads_the_raw_body_and_links_to_each_part(alice, pages):
    post_json("messenger", BATCH)
    event = last_event()
    root = get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw")

    page = _login(root).get(admin_url(event, "change"))

    assert page.status_code == 200
    html = page.content.decode()
    assert "4242" in html and "garage open" in html
    for part in event.parts.all():
        assert admin_url(part, "change") in html


def test_one_businesss_broken_item_costs_neither_the_other_business_nor_the_event(
    alice, bob, pages, monkeypatch
):
    real = storing.inbound_item_apply

    def broken_for_alice(*, account, item):
        if account.pk == pages["alice"].pk:
            raise RuntimeError("parser bug")
        return real(account=account, item=item)

    monkeypatch.setattr("conversations.inbound.batches.inbound_item_apply", broken_for_alice)
    post_json("messenger", BATCH)

    event = last_event()
    assert event.status == WebhookEventStatus.FAILED
    assert "parser bug" in event.error
    assert Message.objects.filter(external_id="m_bob_1").exists()
    assert not Message.objects.filter(external_id="m_alice_1").exists()
    bobs, alices = event.parts.get(business=bob.business), event.parts.get(business=alice.business)
    assert (bobs.status, bobs.error) == ("processed", "")
    assert alices.status == "failed" and "parser bug" in alices.error

    monkeypatch.setattr("conversations.inbound.batches.inbound_item_apply", real)
    call_command("replay_webhooks", stdout=open("/dev/null", "w"))  # noqa: SIM115

    event.refresh_from_db()
    assert event.status == WebhookEventStatus.PROCESSED
    assert event.parts.get(business=alice.business).status == "processed"
    assert Message.objects.filter(external_id__in=["m_alice_1", "m_bob_1"]).count() == 2


@pytest.mark.parametrize("where", ["items", "parts"])
def test_a_transient_database_error_leaves_the_whole_event_for_the_sweeper(
    alice, bob, pages, monkeypatch, where, settings
):
    """A deadlock or a lost connection is not a broken item: recorded as a failed part, the
    event would wait for a person to replay it. The apply rolls back instead, the event stays
    `received`, and the sweeper hands it to a worker again."""
    from django.db import OperationalError

    from conversations.inbound import batches, webhooks
    from conversations.sweeper import messages_sweep

    real_apply, real_save = batches.inbound_item_apply, webhooks.parts_save

    def deadlocked_for_alice(*, account, item):
        if account.pk == pages["alice"].pk:
            raise OperationalError("deadlock detected")
        return real_apply(account=account, item=item)

    def connection_lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    if where == "items":
        monkeypatch.setattr(batches, "inbound_item_apply", deadlocked_for_alice)
    else:
        monkeypatch.setattr(webhooks, "parts_save", connection_lost)
    assert post_json("messenger", BATCH).status_code == 200  # the event is stored

    event = last_event()
    assert (event.status, event.attempts, event.error) == (WebhookEventStatus.RECEIVED, 0, "")
    assert not event.parts.exists()
    assert not Message.objects.filter(external_id__in=["m_alice_1", "m_bob_1"]).exists()

    monkeypatch.setattr(batches, "inbound_item_apply", real_apply)
    monkeypatch.setattr(webhooks, "parts_save", real_save)
    WebhookEvent.objects.filter(pk=event.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.SWEEPER_EVENT_AFTER_SECONDS + 1)
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert messages_sweep()["events"] == 1
    assert Message.objects.filter(external_id__in=["m_alice_1", "m_bob_1"]).count() == 2
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.PROCESSED


def test_replay_gives_a_business_connected_later_its_part_and_nothing_twice(alice, bob, monkeypatch):
    make_account(bob.business, ChannelKind.MESSENGER, BOB_PAGE)
    post_json("messenger", BATCH)
    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED  # Bob's item routed; Alice's did not
    assert list(event.parts.values_list("business", flat=True)) == [bob.business.pk]
    assert ALICE_PAGE in event.error  # the platform sees why

    make_account(alice.business, ChannelKind.MESSENGER, ALICE_PAGE)
    call_command("replay_webhooks", "--status", "all", stdout=open("/dev/null", "w"))  # noqa: SIM115

    assert event.parts.count() == 2
    alices = event.parts.get(business=alice.business)
    assert ALICE_SECRET_TEXT in alices.items and BOB_TEXT not in alices.items
    assert Message.objects.filter(external_id="m_bob_1").count() == 1
    assert Message.objects.filter(external_id="m_alice_1").count() == 1


def test_a_part_keeps_its_notes_to_itself(alice, bob, pages):
    status_for_bob = {
        "object": "page",
        "entry": [
            {
                "id": BOB_PAGE,
                "time": 1767228000500,
                "messaging": [
                    {
                        "sender": {"id": "900000000000001"},
                        "recipient": {"id": BOB_PAGE},
                        "timestamp": 1767228000312,
                        "delivery": {"mids": ["m_unknown_to_bob"], "watermark": 1767228000000},
                    }
                ],
            },
            _messaging(ALICE_PAGE, "900000000000002", "m_alice_2", "hello"),
        ],
    }

    post_json("messenger", status_for_bob)

    event = last_event()
    bobs, alices = event.parts.get(business=bob.business), event.parts.get(business=alice.business)
    assert "m_unknown_to_bob" in bobs.error
    assert "m_unknown_to_bob" not in alices.error and "m_unknown_to_bob" not in alices.items
    assert json.loads(bobs.items)["statuses"][0]["delivery"]["mids"] == ["m_unknown_to_bob"]


def test_a_replay_keeps_the_items_of_an_account_deactivated_since(bob):
    second_page = "333000333000333"
    make_account(bob.business, ChannelKind.MESSENGER, BOB_PAGE)
    later_off = make_account(bob.business, ChannelKind.MESSENGER, second_page)
    body = {
        "object": "page",
        "entry": [
            _messaging(BOB_PAGE, "900000000000001", "m_bob_1", BOB_TEXT),
            _messaging(second_page, "900000000000003", "m_bob_2", "second page's customer"),
        ],
    }
    post_json("messenger", body)
    event = last_event()
    assert "second page's customer" in event.parts.get(business=bob.business).items

    later_off.is_active = False
    later_off.save(update_fields=["is_active"])
    call_command("replay_webhooks", "--status", "all", stdout=open("/dev/null", "w"))  # noqa: SIM115

    items = json.loads(event.parts.get(business=bob.business).items)
    assert [raw["message"]["mid"] for raw in items["messages"]] == ["m_bob_1", "m_bob_2"]
