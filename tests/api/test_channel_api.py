"""channels/api/messages/: the generic API channel, through the same storing path as Meta's webhooks."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from channels_app.models import ChannelAccount, ChannelKind
from conversations import turns
from conversations.models import Author, Contact, Conversation, Direction, Message, MessageStatus
from conversations.outbound import message_outbound_create

URL = "/api/v1/channels/api/messages/"


@pytest.fixture
def enqueued(monkeypatch):
    calls: list = []
    monkeypatch.setattr(
        turns,
        "conversation_process_enqueue",
        lambda *, conversation_id, countdown=None: calls.append(conversation_id),
    )
    return calls


@pytest.fixture
def replying(monkeypatch):
    """Processing that answers at once, standing in for the pipeline."""

    def answer(*, conversation_id, countdown=None):
        conversation = Conversation.objects.get(pk=conversation_id)
        message_outbound_create(
            conversation=conversation, author=Author.AI, text="Olá! Como posso ajudar?", enqueue=False
        )

    monkeypatch.setattr(turns, "conversation_process_enqueue", answer)


def api_messages(business) -> list[Message]:
    return list(Message.objects.filter(business=business, channel_account__kind=ChannelKind.API))


def test_a_customer_message_is_accepted_stored_and_queued(alice, enqueued):
    response = alice.client().post(
        URL,
        {"contact": "cust-42", "text": "Vocês abrem domingo? 🥐", "name": "Ana", "client_message_id": "m-1"},
    )

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"message", "conversation", "status", "duplicate", "reply"}
    assert (body["status"], body["duplicate"], body["reply"]) == ("received", False, None)
    message = Message.objects.select_related("conversation__contact", "channel_account").get(
        pk=body["message"]
    )
    assert str(message.conversation_id) == body["conversation"]
    assert (message.direction, message.author, message.type) == (Direction.IN, Author.CUSTOMER, "text")
    assert (message.text, message.external_id) == ("Vocês abrem domingo? 🥐", "m-1")
    assert message.payload == {"client_message_id": "m-1"}
    assert (message.conversation.contact.external_id, message.conversation.contact.name) == ("cust-42", "Ana")
    assert message.conversation.stage == alice.stage
    assert message.conversation.last_inbound_at is not None
    account = message.channel_account
    assert (account.kind, account.name, account.business, account.is_active) == (
        "api",
        "API",
        alice.business,
        True,
    )
    assert enqueued == [message.conversation_id]


def test_the_api_channel_is_processed_like_any_channel(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.client().post(URL, {"contact": "cust-42", "text": "Oi"})

    message = Message.objects.select_related("conversation").get(pk=response.json()["message"])
    # No LLM is configured in tests: skipped and flagged for staff, as for Meta channels.
    assert message.status == MessageStatus.SKIPPED
    assert message.conversation.needs_human is True


def test_a_repeated_client_message_id_returns_the_original_without_storing_twice(alice, enqueued):
    client = alice.client()
    first = client.post(URL, {"contact": "cust-42", "text": "Oi", "client_message_id": "m-1"})
    again = client.post(URL, {"contact": "cust-42", "text": "Oi", "client_message_id": "m-1"})

    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["duplicate"] is True
    assert (again.json()["message"], again.json()["conversation"]) == (
        first.json()["message"],
        first.json()["conversation"],
    )
    assert len(api_messages(alice.business)) == 1
    assert len(enqueued) == 1


def test_a_client_message_id_reused_for_another_contact_is_a_conflict(alice, enqueued):
    client = alice.client()
    client.post(URL, {"contact": "cust-42", "text": "Oi", "client_message_id": "m-1"})

    response = client.post(URL, {"contact": "cust-43", "text": "Oi", "client_message_id": "m-1"})

    assert response.status_code == 409
    assert "client_message_id" in response.json()["error"]["details"]
    assert not Contact.objects.filter(external_id="cust-43").exists()


def test_without_a_client_message_id_every_post_is_a_new_message_in_the_same_conversation(alice, enqueued):
    client = alice.client()
    first = client.post(URL, {"contact": "cust-42", "text": "Oi"}).json()
    second = client.post(URL, {"contact": "cust-42", "text": "Tudo bem?"}).json()

    assert first["message"] != second["message"]
    assert first["conversation"] == second["conversation"]
    ids = [m.external_id for m in api_messages(alice.business)]
    assert len(ids) == 2 and all(i.startswith("api.") for i in ids)
    assert ChannelAccount.objects.filter(business=alice.business, kind=ChannelKind.API).count() == 1


def test_a_named_api_account_is_used_and_others_are_refused(alice, bob, enqueued):
    mine = ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.API, external_id="site", name="Site"
    )
    inactive = ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.API, external_id="old", name="Old", is_active=False
    )
    bobs = ChannelAccount.objects.create(
        business=bob.business, kind=ChannelKind.API, external_id="bob", name="Bob"
    )
    client = alice.client()

    ok = client.post(URL, {"contact": "c", "text": "x", "channel_account": str(mine.pk)})
    refused = [
        client.post(URL, {"contact": "c", "text": "x", "channel_account": str(account.pk)})
        for account in (inactive, bobs, alice.channel)  # inactive, another tenant's, not an API account
    ]

    assert ok.status_code == 202
    assert Message.objects.get(pk=ok.json()["message"]).channel_account == mine
    assert [r.status_code for r in refused] == [400, 400, 400]
    assert all("channel_account" in r.json()["error"]["details"] for r in refused)
    assert not Message.objects.filter(channel_account__in=[inactive, bobs]).exists()


def test_the_first_active_api_account_is_the_default(alice, enqueued):
    ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.API, external_id="site", name="Site"
    )

    response = alice.client().post(URL, {"contact": "c", "text": "x"})

    assert Message.objects.get(pk=response.json()["message"]).channel_account.external_id == "site"
    assert ChannelAccount.objects.filter(business=alice.business, kind=ChannelKind.API).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "x"}, "contact"),
        ({"contact": "c"}, "text"),
        ({"contact": "", "text": "x"}, "contact"),
        ({"contact": "c", "text": "   "}, "text"),
        ({"contact": "c" * 129, "text": "x"}, "contact"),
        ({"contact": "c", "text": "x" * 4097}, "text"),
        ({"contact": "c", "text": "x", "client_message_id": "m" * 256}, "client_message_id"),
        ({"contact": "c", "text": "x", "name": "n" * 201}, "name"),
        ({"contact": ["c"], "text": "x"}, "contact"),
        ({"contact": "c", "text": {"body": "x"}}, "text"),
        ({"contact": "c", "text": "x", "channel_account": "not-a-uuid"}, "channel_account"),
        ({"contact": "c", "text": "x", "business": "00000000-0000-0000-0000-000000000000"}, "business"),
        ({"contact": "c", "text": "x", "direction": "out"}, "direction"),
    ],
)
def test_bad_input_is_400_and_stores_nothing(alice, enqueued, body, field):
    response = alice.client().post(URL, body)

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert api_messages(alice.business) == []
    assert enqueued == []


def test_the_longest_allowed_values_are_accepted(alice, enqueued):
    body = {"contact": "c" * 128, "text": "x" * 4096, "client_message_id": "m" * 255, "name": "n" * 200}

    assert alice.client().post(URL, body).status_code == 202


def test_a_body_that_is_not_json_is_400(alice):
    response = alice.client().post(URL, data="contact=c&text=x", content_type="application/json")

    assert response.status_code == 400


@pytest.mark.parametrize("wait", ["abc", "-1", "31", "nan", "inf", ""])
def test_a_bad_wait_is_400_and_stores_nothing(alice, enqueued, wait):
    response = alice.client().post(f"{URL}?wait={wait}", {"contact": "c", "text": "x"}, format="json")

    assert response.status_code == 400
    assert "wait" in response.json()["error"]["details"]
    assert api_messages(alice.business) == []


def test_wait_returns_the_reply_when_it_is_ready(alice, replying):
    response = alice.client().post(f"{URL}?wait=5", {"contact": "c", "text": "Oi"}, format="json")

    assert response.status_code == 202
    reply = response.json()["reply"]
    assert reply["text"] == "Olá! Como posso ajudar?"
    assert (reply["direction"], reply["author"]) == ("out", "ai")
    assert reply["conversation"] == response.json()["conversation"]


def test_wait_gives_up_after_the_time_asked_and_returns_null(alice, enqueued):
    client = alice.client()
    earlier = client.post(URL, {"contact": "c", "text": "first"}).json()
    # An older reply in the same conversation is not the reply to the new message.
    message_outbound_create(
        conversation=Conversation.objects.get(pk=earlier["conversation"]),
        author=Author.AI,
        text="old",
        enqueue=False,
    )

    started = time.monotonic()
    response = client.post(f"{URL}?wait=0.5", {"contact": "c", "text": "second"}, format="json")
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    assert response.json()["reply"] is None
    assert 0.45 <= elapsed < 3


def test_wait_zero_does_not_wait(alice, enqueued):
    started = time.monotonic()
    response = alice.client().post(f"{URL}?wait=0", {"contact": "c", "text": "x"}, format="json")

    assert response.json()["reply"] is None
    assert time.monotonic() - started < 1


def test_a_duplicate_with_wait_returns_the_existing_reply(alice, replying):
    client = alice.client()
    client.post(URL, {"contact": "c", "text": "Oi", "client_message_id": "m-9"})

    again = client.post(
        f"{URL}?wait=0", {"contact": "c", "text": "Oi", "client_message_id": "m-9"}, format="json"
    )

    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["reply"]["text"] == "Olá! Como posso ajudar?"


def test_each_business_gets_its_own_api_account_and_contacts(alice, bob, enqueued):
    a = alice.client().post(URL, {"contact": "same-id", "text": "x", "client_message_id": "1"}).json()
    b = bob.client().post(URL, {"contact": "same-id", "text": "x", "client_message_id": "1"}).json()

    assert a["message"] != b["message"] and a["conversation"] != b["conversation"]
    assert Message.objects.get(pk=b["message"]).business == bob.business


def test_the_route_needs_a_business_principal(alice, alice_viewer, anon_client, master_client, enqueued):
    viewer = APIClient()
    assert viewer.login(username="victor@example.com", password="pw-victor")
    body = {"contact": "c", "text": "x"}

    assert anon_client.post(URL, body, format="json").status_code in (401, 403)
    assert master_client.post(URL, body, format="json").status_code == 403
    assert viewer.post(URL, body, format="json").status_code == 403
    assert api_messages(alice.business) == []


def test_the_schema_documents_the_api_channel(db, anon_client):
    paths = anon_client.get("/api/schema/?format=json").json()["paths"]

    operation = paths["/api/v1/channels/api/messages/"]["post"]
    assert {"202", "200", "400"} <= set(operation["responses"])
    assert any(p["name"] == "wait" for p in operation["parameters"])
