"""POST conversations/<id>/messages/: staff answer through the normal send path, and the AI pauses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import AIMode, Author, Conversation, Direction, Message, MessageStatus
from tests.fakes.graph_api import FakeGraphAPI


def url(conversation) -> str:
    return f"/api/v1/conversations/{conversation.pk}/messages/"


def session(email: str, password: str) -> APIClient:
    client = APIClient()
    assert client.login(username=email, password=password)
    return client


@pytest.fixture
def open_window(alice):
    """The customer wrote a minute ago: WhatsApp's 24-hour window is open."""
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        last_inbound_at=timezone.now() - timedelta(minutes=1)
    )


def test_a_staff_reply_is_queued_pauses_the_ai_and_is_sent_after_commit(
    alice, open_window, fake_graph: FakeGraphAPI, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.client().post(url(alice.conversation), {"text": "Oi Ana, aqui é a Maria 🙂"})

    assert response.status_code == 201
    body = response.json()
    assert (body["direction"], body["author"], body["status"]) == ("out", "staff", "queued")
    assert body["text"] == "Oi Ana, aqui é a Maria 🙂"
    assert body["conversation"] == str(alice.conversation.pk)

    message = Message.objects.get(pk=body["id"])
    assert message.status == MessageStatus.SENT
    assert message.external_id == "wamid.1"
    assert message.sent_by is None  # an API key acts for the business, not a person
    request = fake_graph.last
    assert request.path == f"/v25.0/{alice.channel.external_id}/messages"
    assert request.headers["Authorization"] == f"Bearer {alice.channel.access_token}"
    assert request.body["to"] == alice.contact.external_id
    assert request.body["text"]["body"] == "Oi Ana, aqui é a Maria 🙂"

    conversation = Conversation.objects.get(pk=alice.conversation.pk)
    assert conversation.ai_mode == AIMode.PAUSED
    assert conversation.handoff_reason == "Staff replied"


def test_the_staff_reply_appears_in_the_transcript(alice, open_window):
    alice.client().post(url(alice.conversation), {"text": "Já verifico."})

    rows = alice.client().get(url(alice.conversation)).json()["results"]

    assert [(r["direction"], r["author"], r["text"]) for r in rows][-1] == ("out", "staff", "Já verifico.")


def test_a_session_reply_records_who_sent_it(alice, alice_editor, open_window):
    response = session("eve@example.com", "pw-eve").post(
        url(alice.conversation), {"text": "Oi"}, format="json"
    )

    assert response.status_code == 201
    assert Message.objects.get(pk=response.json()["id"]).sent_by == alice_editor


def test_a_reply_keeps_an_earlier_pause_reason(alice, open_window):
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        ai_mode=AIMode.PAUSED, handoff_reason="Asked for a human"
    )

    alice.client().post(url(alice.conversation), {"text": "Oi"})

    assert Conversation.objects.get(pk=alice.conversation.pk).handoff_reason == "Asked for a human"


def test_a_failed_send_is_visible_on_the_message(
    alice, fake_graph: FakeGraphAPI, django_capture_on_commit_callbacks
):
    # No customer message in the last 24 hours and no template configured: WhatsApp refuses free text.
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.client().post(url(alice.conversation), {"text": "Oi"})

    message = Message.objects.get(pk=response.json()["id"])
    assert (message.status, message.error_code) == (MessageStatus.FAILED, "131047")
    assert fake_graph.requests == []


def test_a_viewer_may_not_reply(alice, alice_viewer, open_window):
    response = session("victor@example.com", "pw-victor").post(
        url(alice.conversation), {"text": "Oi"}, format="json"
    )

    assert response.status_code == 403
    assert not Message.objects.filter(conversation=alice.conversation, author=Author.STAFF).exists()
    assert Conversation.objects.get(pk=alice.conversation.pk).ai_mode == AIMode.AUTO


def test_another_tenants_conversation_is_404_and_untouched(alice, bob):
    response = bob.client().post(url(alice.conversation), {"text": "hijacked"})
    unknown = bob.client().post(
        "/api/v1/conversations/0192d3a4-0000-7000-8000-000000000000/messages/", {"text": "x"}
    )

    assert (response.status_code, unknown.status_code) == (404, 404)
    assert not Message.objects.filter(author=Author.STAFF).exists()
    assert Conversation.objects.get(pk=alice.conversation.pk).ai_mode == AIMode.AUTO


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "text"),
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * 4097}, "text"),
        ({"text": ["x"]}, "text"),
        ({"text": "x", "author": "ai"}, "author"),
        ({"text": "x", "direction": "in"}, "direction"),
    ],
)
def test_bad_input_is_400_and_changes_nothing(alice, body, field):
    response = alice.client().post(url(alice.conversation), body)

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert Message.objects.filter(conversation=alice.conversation).count() == 2
    assert Conversation.objects.get(pk=alice.conversation.pk).ai_mode == AIMode.AUTO


def test_the_longest_reply_is_accepted(alice):
    assert alice.client().post(url(alice.conversation), {"text": "x" * 4096}).status_code == 201


def test_the_schema_documents_the_staff_reply(db, anon_client):
    paths = anon_client.get("/api/schema/?format=json").json()["paths"]

    operation = paths["/api/v1/conversations/{conversation_id}/messages/"]
    assert "get" in operation
    assert {"201", "400", "404"} <= set(operation["post"]["responses"])
    assert operation["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "StaffReplyRequest"
    )


def test_the_transcript_is_still_read_with_get(alice):
    rows = alice.client().get(url(alice.conversation)).json()["results"]

    assert [r["direction"] for r in rows] == [Direction.IN, Direction.OUT]
