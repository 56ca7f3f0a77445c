"""Meta may deliver the same webhook concurrently: still one row and one processing (PostgreSQL).

Real threads post through the real URL at the same moment, each on its own
database connection; each door stores its event and (no broker here) applies
it right after its commit, so the applies race each other and the unique
constraints (not luck) decide the race.
SQLite serialises writers, so these tests only mean something on PostgreSQL.
"""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from django.db import connection

from channels_app.models import WebhookEvent, WebhookEventStatus
from conversations import tasks
from conversations.models import Contact, Conversation, Message, MessageStatus
from conversations.turns import TurnOutcome
from tests.channels import fixture
from tests.channels.webhook_helpers import ANA, APP_SECRET, meta_accounts, post_bytes, post_json

pytestmark = pytest.mark.django_db(transaction=True)

# Below the connection pool's size (DATABASE_POOL_MAX_SIZE, 8), with room for the test's own.
THREADS = 6


@pytest.fixture(autouse=True)
def _postgres_only(settings):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent delivery needs PostgreSQL (SQLite serialises writers)")
    settings.META_APP_SECRET = APP_SECRET
    settings.META_APP_ID = ""


@pytest.fixture
def enqueued(monkeypatch):
    """Conversations whose processing the applied events started (the turns do not run)."""
    calls: list = []
    lock = threading.Lock()

    def spy(*, conversation_id, wait_for_burst=True):
        with lock:
            calls.append(uuid.UUID(str(conversation_id)))
        return TurnOutcome(status="done")

    monkeypatch.setattr(tasks, "conversation_turn_process", spy)
    return calls


def at_once(posts) -> list[int]:
    """Run the callables in threads released together; their status codes."""
    barrier = threading.Barrier(len(posts))
    codes: list[int] = []
    errors: list[BaseException] = []

    def run(post) -> None:
        try:
            barrier.wait(timeout=10)
            codes.append(post().status_code)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(post,)) for post in posts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return codes


def test_concurrent_duplicate_deliveries_store_one_message_and_enqueue_once(alice, enqueued):
    accounts = meta_accounts(alice.business)
    body = fixture("whatsapp", "text")

    codes = at_once([lambda: post_json("whatsapp", body)] * THREADS)

    assert codes == [200] * THREADS
    assert Message.objects.filter(channel_account=accounts["whatsapp"]).count() == 1
    assert Contact.objects.filter(channel_account=accounts["whatsapp"]).count() == 1
    assert Conversation.objects.filter(channel_account=accounts["whatsapp"]).count() == 1
    assert len(enqueued) == 1
    assert WebhookEvent.objects.filter(status=WebhookEventStatus.PROCESSED).count() == THREADS


def test_a_concurrent_burst_from_a_new_customer_opens_one_conversation(alice, enqueued):
    accounts = meta_accounts(alice.business)

    def message(n: int):
        payload = fixture("whatsapp", "text")
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.BURST{n}"
        return lambda: post_json("whatsapp", payload)

    codes = at_once([message(n) for n in range(THREADS)])

    assert codes == [200] * THREADS
    messages = Message.objects.filter(channel_account=accounts["whatsapp"])
    assert messages.count() == THREADS
    [conversation] = Conversation.objects.filter(channel_account=accounts["whatsapp"])
    assert set(messages.values_list("conversation_id", flat=True)) == {conversation.pk}
    assert Contact.objects.get(channel_account=accounts["whatsapp"]).external_id == ANA
    assert set(enqueued) == {conversation.pk}


def test_concurrent_duplicates_are_processed_once_end_to_end(alice):
    # The real enqueue: without a broker the turn runs in-process after commit;
    # with no LLM configured it marks the message skipped and flags the conversation.
    accounts = meta_accounts(alice.business)
    body = fixture("messenger", "text")
    raw = json.dumps(body).encode()

    codes = at_once([lambda: post_bytes("messenger", raw)] * THREADS)

    assert codes == [200] * THREADS
    [message] = Message.objects.filter(channel_account=accounts["messenger"])
    assert message.status == MessageStatus.SKIPPED
    assert message.attempts == 1  # one turn handled it
    assert message.conversation.needs_human is True


def test_one_person_by_number_by_bsuid_and_by_both_at_once_ends_as_one_contact(alice, enqueued):
    """Usernames: the same customer may arrive by number, by BSUID or by both, concurrently."""
    accounts = meta_accounts(alice.business)
    bsuid = "BR.80011122233344455566"

    def message(n: int):
        payload = fixture("whatsapp", "number_and_bsuid")
        value = payload["entry"][0]["changes"][0]["value"]
        item, contact = value["messages"][0], value["contacts"][0]
        item["id"] = f"wamid.MERGE{n}"
        if n % 3 == 0:  # the number only
            item.pop("from_user_id"), contact.pop("user_id")
        elif n % 3 == 1:  # the BSUID only
            item.pop("from"), contact.pop("wa_id")
        return lambda: post_json("whatsapp", payload)

    codes = at_once([message(n) for n in range(THREADS)])

    assert codes == [200] * THREADS
    assert WebhookEvent.objects.filter(status=WebhookEventStatus.PROCESSED).count() == THREADS
    [contact] = Contact.objects.filter(channel_account=accounts["whatsapp"])
    assert (contact.phone, contact.bsuid, contact.external_id) == (ANA, bsuid, bsuid)
    [conversation] = Conversation.objects.filter(contact=contact, status="open")
    pending = Message.objects.filter(channel_account=accounts["whatsapp"], status=MessageStatus.RECEIVED)
    assert pending.count() == THREADS
    assert set(pending.values_list("conversation_id", flat=True)) == {conversation.pk}
