"""contacts/, conversations/, the transcript and pausing/resuming the AI."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from channels_app.models import ChannelAccount, ChannelKind
from conversations.models import (
    AIMode,
    Author,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    Message,
    MessageStatus,
)
from stages.models import Stage

CONTACTS = "/api/v1/contacts/"
CONVERSATIONS = "/api/v1/conversations/"


def conversation_url(conversation, suffix: str = "") -> str:
    return f"{CONVERSATIONS}{conversation.pk}/{suffix}"


def session_client(email: str, password: str) -> APIClient:
    client = APIClient()
    assert client.login(username=email, password=password)
    return client


def add_conversation(
    tenant, external_id: str, *, channel=None, minutes_ago: int = 0, **fields
) -> Conversation:
    channel = channel or tenant.channel
    contact = Contact.objects.create(
        business=tenant.business,
        channel_account=channel,
        external_id=external_id,
        name=f"Customer {external_id}",
    )
    return Conversation.objects.create(
        business=tenant.business,
        contact=contact,
        channel_account=channel,
        last_message_at=timezone.now() - timedelta(minutes=minutes_ago),
        **fields,
    )


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def snapshot(conversation: Conversation) -> dict:
    return Conversation.objects.filter(pk=conversation.pk).values().get()


# --- contacts ---------------------------------------------------------------------


def test_contacts_list_shows_the_business_contacts(alice, bob):
    response = alice.client().get(CONTACTS)

    assert ids(response) == [str(alice.contact.pk)]
    row = response.json()["results"][0]
    assert row["external_id"] == alice.contact.external_id
    assert row["name"] == "Customer"
    assert row["channel_account"] == str(alice.channel.pk)
    assert "created_at" in row


def test_contacts_filter_by_channel_account_and_search_by_name_or_external_id(alice):
    other = ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.MESSENGER, external_id="555", name="Page"
    )
    maria = Contact.objects.create(
        business=alice.business, channel_account=other, external_id="psid-777", name="Maria Silva"
    )
    client = alice.client()

    assert ids(client.get(CONTACTS, {"channel_account": str(other.pk)})) == [str(maria.pk)]
    assert ids(client.get(CONTACTS, {"q": "silva"})) == [str(maria.pk)]
    assert ids(client.get(CONTACTS, {"q": "psid-7"})) == [str(maria.pk)]
    assert ids(client.get(CONTACTS, {"q": "nobody"})) == []
    bad = client.get(CONTACTS, {"channel_account": "not-a-uuid"})
    assert bad.status_code == 400
    assert "channel_account" in bad.json()["error"]["details"]


def whatsapp_user(tenant, **ids) -> Contact:
    """A WhatsApp customer known by username and BSUID, and by number when `phone` is given."""
    defaults = {"bsuid": "US.13491208655302741918", "username": "bia.flowers", "phone": None}
    fields = defaults | ids
    return Contact.objects.create(
        business=tenant.business,
        channel_account=tenant.channel,
        external_id=fields["bsuid"],
        name="Bia",
        **fields,
    )


def test_contacts_show_and_are_searched_by_username_phone_and_bsuid(alice, bob):
    bia = whatsapp_user(alice)
    whatsapp_user(bob, bsuid="US.99999999999999999999", username="bia.other")
    client = alice.client()

    row = client.get(f"{CONTACTS}{bia.pk}/").json()
    assert (row["bsuid"], row["username"], row["phone"], row["parent_bsuid"]) == (
        bia.bsuid,
        "bia.flowers",
        None,
        None,
    )
    for query in ("bia.flo", "US.1349", "13491208655302741918"):
        assert ids(client.get(CONTACTS, {"q": query})) == [str(bia.pk)], query
    Contact.objects.filter(pk=bia.pk).update(phone="5511900001111")
    assert ids(client.get(CONTACTS, {"q": "5511900001111"})) == [str(bia.pk)]
    assert client.patch(f"{CONTACTS}{bia.pk}/", {"bsuid": "US.1"}, format="json").status_code == 400


def test_conversations_are_searched_by_the_contacts_username_phone_or_bsuid(alice, bob):
    bia = whatsapp_user(alice, phone="5511900002222")
    conversation = Conversation.objects.create(
        business=alice.business, contact=bia, channel_account=alice.channel
    )
    whatsapp_user(bob, bsuid="US.13491208655302741918")  # the same ids in another tenant
    client = alice.client()

    for query in ("bia.flowers", "5511900002222", "US.13491208655302741918"):
        assert ids(client.get(CONVERSATIONS, {"q": query})) == [str(conversation.pk)], query
    assert ids(client.get(CONVERSATIONS, {"q": "nobody"})) == []
    assert client.get(CONVERSATIONS, {"q": "x" * 161}).status_code == 400


def test_a_contact_can_be_renamed_but_nothing_else_changes(alice):
    client = alice.client()
    url = f"{CONTACTS}{alice.contact.pk}/"

    renamed = client.patch(url, {"name": "  Maria  "}, format="json")
    refused = client.patch(url, {"external_id": "999", "name": "Other"}, format="json")

    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Maria"
    assert refused.status_code == 400
    assert "external_id" in refused.json()["error"]["details"]
    alice.contact.refresh_from_db()
    assert (alice.contact.name, alice.contact.external_id) == ("Maria", "106540352299")
    assert client.put(url, {"name": "x"}, format="json").status_code == 405
    assert client.post(CONTACTS, {"name": "x"}, format="json").status_code == 405


def test_a_viewer_reads_contacts_but_cannot_rename_them(alice, alice_viewer):
    client = session_client("victor@example.com", "pw-victor")

    assert ids(client.get(CONTACTS)) == [str(alice.contact.pk)]
    response = client.patch(f"{CONTACTS}{alice.contact.pk}/", {"name": "Nope"}, format="json")
    assert response.status_code == 403
    alice.contact.refresh_from_db()
    assert alice.contact.name == "Customer"


def test_bob_cannot_read_or_rename_alices_contact(alice, bob):
    client = bob.client()
    url = f"{CONTACTS}{alice.contact.pk}/"

    assert client.get(url).status_code == 404
    assert client.patch(url, {"name": "hijacked"}, format="json").status_code == 404
    alice.contact.refresh_from_db()
    assert alice.contact.name == "Customer"
    assert ids(client.get(CONTACTS)) == [str(bob.contact.pk)]
    assert ids(client.get(CONTACTS, {"channel_account": str(alice.channel.pk)})) == []


# --- conversations: reading and filtering ------------------------------------------


def test_a_conversation_shows_its_contact_channel_stage_and_ai_state(alice):
    response = alice.client().get(conversation_url(alice.conversation))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(alice.conversation.pk)
    assert body["contact"] == {
        "id": str(alice.contact.pk),
        "external_id": alice.contact.external_id,
        "name": "Customer",
        "phone": None,
        "bsuid": None,
        "username": "",
    }
    assert body["channel_account"] == str(alice.channel.pk)
    assert body["channel"] == "whatsapp"
    assert body["stage"] == "general"
    assert body["status"] == "open"
    assert body["ai_mode"] == "auto"
    assert body["needs_human"] is False
    assert body["handoff_reason"] == ""
    assert body["collected_data"] == {}
    assert body["last_inbound_at"] is None
    assert body["last_message_at"]
    assert body["created_at"]


def test_the_list_is_ordered_by_latest_activity_and_pages_with_a_cursor(alice):
    old = add_conversation(alice, "old", minutes_ago=60)
    recent = add_conversation(alice, "recent", minutes_ago=1)
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        last_message_at=timezone.now() - timedelta(minutes=30)
    )
    client = alice.client()

    first = client.get(CONVERSATIONS, {"page_size": 2})
    second = client.get(first.json()["next"])

    assert ids(first) == [str(recent.pk), str(alice.conversation.pk)]
    assert ids(second) == [str(old.pk)]
    assert second.json()["next"] is None


def test_each_filter_narrows_the_list(alice):
    messenger = ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.MESSENGER, external_id="777", name="Page"
    )
    booking = Stage.objects.create(business=alice.business, key="booking", name="Booking", order=1)
    flagged = add_conversation(alice, "flagged", needs_human=True, ai_mode=AIMode.PAUSED)
    closed = add_conversation(alice, "closed", status=ConversationStatus.CLOSED)
    on_messenger = add_conversation(alice, "psid-1", channel=messenger, stage=booking)
    client = alice.client()

    def listed(**query) -> set[str]:
        return set(ids(client.get(CONVERSATIONS, query)))

    everything = {str(c.pk) for c in (alice.conversation, flagged, closed, on_messenger)}
    assert listed() == everything
    assert listed(needs_human="true") == {str(flagged.pk)}
    assert listed(needs_human="false") == everything - {str(flagged.pk)}
    assert listed(status="closed") == {str(closed.pk)}
    assert listed(status="open") == everything - {str(closed.pk)}
    assert listed(channel="messenger") == {str(on_messenger.pk)}
    assert listed(channel="instagram") == set()
    assert listed(channel_account=str(messenger.pk)) == {str(on_messenger.pk)}
    assert listed(stage="booking") == {str(on_messenger.pk)}
    assert listed(stage=str(booking.pk)) == {str(on_messenger.pk)}
    assert listed(stage="general") == {str(alice.conversation.pk)}
    assert listed(contact=str(flagged.contact_id)) == {str(flagged.pk)}
    assert listed(ai_mode="paused") == {str(flagged.pk)}
    assert listed(status="open", channel="whatsapp", needs_human="false") == {str(alice.conversation.pk)}


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("needs_human", "maybe"),
        ("contact", "not-a-uuid"),
        ("channel_account", "123"),
        ("status", "archived"),
        ("channel", "sms"),
        ("ai_mode", "manual"),
        ("stage", "x" * 65),
    ],
)
def test_a_filter_value_of_the_wrong_type_answers_400(alice, param, value):
    response = alice.client().get(CONVERSATIONS, {param: value})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert param in error["details"]


def test_list_filters_do_not_hide_a_conversation_from_its_detail_route(alice):
    response = alice.client().get(conversation_url(alice.conversation), {"needs_human": "true"})

    assert response.status_code == 200


def test_listing_conversations_costs_the_same_queries_for_one_or_many(alice, django_assert_max_num_queries):
    client = alice.client()
    client.get(CONVERSATIONS)  # the key's last_used_at write happens once, on first use
    with CaptureQueriesContext(connection) as one_row:
        assert len(ids(client.get(CONVERSATIONS))) == 1
    extra_stage = Stage.objects.create(business=alice.business, key="faq", name="FAQ", order=2)
    for n in range(12):
        add_conversation(alice, f"bulk-{n}", stage=extra_stage if n % 2 else None)

    with django_assert_max_num_queries(len(one_row)):
        response = client.get(CONVERSATIONS)

    assert len(ids(response)) == 13


def test_bob_sees_none_of_alices_conversations_even_when_filtering_by_her_ids(alice, bob):
    client = bob.client()

    assert ids(client.get(CONVERSATIONS)) == [str(bob.conversation.pk)]
    for query in (
        {"contact": str(alice.contact.pk)},
        {"channel_account": str(alice.channel.pk)},
        {"stage": str(alice.stage.pk)},
    ):
        response = client.get(CONVERSATIONS, query)
        assert ids(response) == []
        assert str(alice.conversation.pk).encode() not in response.content


# --- the transcript ---------------------------------------------------------------


def add_message(tenant, text: str, *, seconds: int, direction=Direction.IN) -> Message:
    message = Message.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        channel_account=tenant.channel,
        direction=direction,
        author=Author.CUSTOMER if direction == Direction.IN else Author.STAFF,
        text=text,
        status=MessageStatus.RECEIVED if direction == Direction.IN else MessageStatus.SENT,
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() + timedelta(seconds=seconds))
    return message


def test_the_transcript_reads_oldest_first_and_pages_forward(alice):
    later = add_message(alice, "later", seconds=120, direction=Direction.OUT)
    earlier = add_message(alice, "earlier", seconds=60)
    client = alice.client()
    url = conversation_url(alice.conversation, "messages/")

    first = client.get(url, {"page_size": 3})
    second = client.get(first.json()["next"])

    inbound, outbound = alice.messages
    assert ids(first) == [str(inbound.pk), str(outbound.pk), str(earlier.pk)]
    assert ids(second) == [str(later.pk)]
    row = first.json()["results"][0]
    assert row["direction"] == "in"
    assert row["author"] == "customer"
    assert row["type"] == "text"
    assert row["text"] == "Hello"
    assert row["external_id"] == inbound.external_id
    assert row["status"] == "answered"
    assert {"payload", "reply_to_external_id", "error_code", "error", "created_at"} <= set(row)
    assert "raw" not in row


def test_the_transcript_cannot_be_edited_or_deleted(alice):
    url = conversation_url(alice.conversation, "messages/")
    client = alice.client()

    for method in ("put", "patch", "delete"):
        assert getattr(client, method)(url, {"text": "hi"}, format="json").status_code == 405
    assert Message.objects.filter(conversation=alice.conversation).count() == 2


def test_bob_cannot_read_alices_transcript(alice, bob):
    response = bob.client().get(conversation_url(alice.conversation, "messages/"))

    assert response.status_code == 404
    assert b"Hello" not in response.content


def test_an_unknown_conversation_id_answers_404(alice):
    client = alice.client()

    assert client.get(f"{CONVERSATIONS}not-a-uuid/messages/").status_code == 404
    assert client.get(f"{CONVERSATIONS}00000000-0000-7000-8000-000000000000/messages/").status_code == 404
    assert client.get(f"{CONVERSATIONS}00000000-0000-7000-8000-000000000000/").status_code == 404


# --- pausing and resuming the AI ----------------------------------------------------


def test_pausing_sets_ai_mode_and_reason_and_is_idempotent(alice):
    client = alice.client()
    url = conversation_url(alice.conversation, "pause-ai/")

    first = client.post(url, {"reason": "Customer is a VIP"}, format="json")
    second = client.post(url, {"reason": "Another reason"}, format="json")

    assert first.status_code == second.status_code == 200
    assert first.json()["ai_mode"] == "paused"
    assert first.json()["handoff_reason"] == "Customer is a VIP"
    assert second.json()["ai_mode"] == "paused"
    assert second.json()["handoff_reason"] == "Customer is a VIP"
    alice.conversation.refresh_from_db()
    assert alice.conversation.ai_mode == AIMode.PAUSED
    assert alice.conversation.handoff_reason == "Customer is a VIP"
    assert alice.conversation.needs_human is False


def test_pausing_without_a_body_gives_a_default_reason(alice):
    response = alice.client().post(conversation_url(alice.conversation, "pause-ai/"))

    assert response.status_code == 200
    assert response.json()["ai_mode"] == "paused"
    assert response.json()["handoff_reason"]


def test_pausing_keeps_the_reason_of_an_automatic_handoff(alice):
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        ai_mode=AIMode.PAUSED, needs_human=True, handoff_reason="LLM unavailable"
    )

    response = alice.client().post(conversation_url(alice.conversation, "pause-ai/"), {}, format="json")

    assert response.status_code == 200
    assert response.json()["handoff_reason"] == "LLM unavailable"
    assert response.json()["needs_human"] is True


def test_resuming_hands_back_to_the_ai_and_clears_the_flag_and_is_idempotent(alice):
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        ai_mode=AIMode.PAUSED, needs_human=True, handoff_reason="Customer asked for a person"
    )
    client = alice.client()
    url = conversation_url(alice.conversation, "resume-ai/")

    first = client.post(url)
    second = client.post(url, {}, format="json")

    for response in (first, second):
        assert response.status_code == 200
        body = response.json()
        assert (body["ai_mode"], body["needs_human"], body["handoff_reason"]) == ("auto", False, "")
    alice.conversation.refresh_from_db()
    assert alice.conversation.ai_mode == AIMode.AUTO
    assert alice.conversation.needs_human is False
    assert alice.conversation.handoff_reason == ""


def test_pause_and_resume_reject_unknown_fields_and_change_nothing(alice):
    client = alice.client()
    before = snapshot(alice.conversation)

    paused = client.post(conversation_url(alice.conversation, "pause-ai/"), {"ai_mode": "x"}, format="json")
    long_reason = client.post(
        conversation_url(alice.conversation, "pause-ai/"), {"reason": "x" * 501}, format="json"
    )
    resumed = client.post(conversation_url(alice.conversation, "resume-ai/"), {"force": True}, format="json")

    assert paused.status_code == long_reason.status_code == resumed.status_code == 400
    assert "ai_mode" in paused.json()["error"]["details"]
    assert "force" in resumed.json()["error"]["details"]
    assert snapshot(alice.conversation) == before


def test_an_editor_may_pause_but_a_viewer_may_not(alice, alice_editor, alice_viewer):
    url = conversation_url(alice.conversation, "pause-ai/")

    viewer = session_client("victor@example.com", "pw-victor").post(url, {}, format="json")
    assert viewer.status_code == 403
    assert snapshot(alice.conversation)["ai_mode"] == AIMode.AUTO
    viewer_resume = session_client("victor@example.com", "pw-victor").post(
        conversation_url(alice.conversation, "resume-ai/")
    )
    assert viewer_resume.status_code == 403

    editor = session_client("eve@example.com", "pw-eve").post(url, {}, format="json")
    assert editor.status_code == 200
    assert snapshot(alice.conversation)["ai_mode"] == AIMode.PAUSED


def test_bob_cannot_pause_or_resume_alices_conversation(alice, bob):
    Conversation.objects.filter(pk=alice.conversation.pk).update(needs_human=True, handoff_reason="why")
    before = snapshot(alice.conversation)
    client = bob.client()

    responses = [
        client.get(conversation_url(alice.conversation)),
        client.post(conversation_url(alice.conversation, "pause-ai/"), {"reason": "hijack"}, format="json"),
        client.post(conversation_url(alice.conversation, "resume-ai/")),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert snapshot(alice.conversation) == before


def test_conversations_cannot_be_created_or_changed_through_the_collection(alice):
    client = alice.client()

    assert client.post(CONVERSATIONS, {"contact": str(alice.contact.pk)}, format="json").status_code == 405
    assert (
        client.patch(conversation_url(alice.conversation), {"ai_mode": "paused"}, format="json").status_code
        == 405
    )
    assert client.delete(conversation_url(alice.conversation)).status_code == 405
    assert Conversation.objects.filter(business=alice.business).count() == 1
