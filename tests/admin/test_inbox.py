"""The admin inbox: the conversation list, the conversation page and the human-takeover actions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from channels_app.models import ChannelAccount, ChannelKind
from conversations.models import (
    AIMode,
    Author,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    LLMCall,
    LLMOutcome,
    LLMPurpose,
    Message,
    MessageStatus,
)
from stages.models import Stage

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/conversations/conversation/"
SCRIPT = "<script>alert('pwned')</script>"
ESCAPED = "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;"


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_url(conversation, action: str = "change") -> str:
    return reverse(f"admin:conversations_conversation_{action}", args=[conversation.pk])


def conversation_of(tenant, name: str, *, channel=None, **fields) -> Conversation:
    channel = channel or tenant.channel
    contact = Contact.objects.create(
        business=tenant.business, channel_account=channel, external_id=f"ext-{name}", name=name
    )
    fields.setdefault("stage", tenant.stage)
    return Conversation.objects.create(
        business=tenant.business, contact=contact, channel_account=channel, **fields
    )


def message_in(conversation, text: str, **fields) -> Message:
    defaults = {
        "direction": Direction.IN,
        "author": Author.CUSTOMER,
        "status": MessageStatus.ANSWERED,
    }
    return Message.objects.create(
        business_id=conversation.business_id,
        conversation=conversation,
        channel_account_id=conversation.channel_account_id,
        text=text,
        **(defaults | fields),
    )


def listed(response) -> set:
    assert response.status_code == 200
    return {row.pk for row in response.context["cl"].result_list}


# -- the list ------------------------------------------------------------------------


@pytest.fixture
def inbox(alice, bob):
    """Alice's conversations, each differing from the fixture's in one way; Bob's matches every filter."""
    messenger = ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.MESSENGER, external_id="page-1", name="Alice's Page"
    )
    checkout = Stage.objects.create(business=alice.business, key="checkout", name="Checkout", order=5)
    old = timezone.now() - timedelta(days=12)
    rows = {
        "plain": alice.conversation,
        "flagged": conversation_of(alice, "Flagged", needs_human=True, handoff_reason="Asked for a refund"),
        "paused": conversation_of(alice, "Paused", ai_mode=AIMode.PAUSED),
        "messenger": conversation_of(alice, "Messenger", channel=messenger),
        "checkout": conversation_of(alice, "Checkout", stage=checkout),
        "closed": conversation_of(alice, "Closed", status=ConversationStatus.CLOSED),
    }
    Conversation.objects.filter(pk__in=[c.pk for c in rows.values()]).update(
        last_message_at=timezone.now() - timedelta(hours=1)
    )
    rows["old"] = conversation_of(alice, "Old")
    Conversation.objects.filter(pk=rows["old"].pk).update(last_message_at=old)
    Conversation.objects.filter(pk=bob.conversation.pk).update(
        needs_human=True, ai_mode=AIMode.PAUSED, status=ConversationStatus.CLOSED
    )
    rows["checkout_stage"] = checkout
    return rows


def test_the_inbox_lists_alices_conversations_newest_first_with_a_preview_and_none_of_bobs(
    inbox, alice, bob, alice_editor
):
    message_in(alice.conversation, "Do you deliver\non Sundays? " + "x" * 200)

    response = login(alice_editor).get(CHANGELIST)

    rows = response.context["cl"].result_list
    assert {row.pk for row in rows} == {c.pk for k, c in inbox.items() if k != "checkout_stage"}
    assert rows[-1].pk == inbox["old"].pk
    html = response.content.decode()
    assert "Customer: Do you deliver on Sundays? xxx" in html
    assert "x" * 100 not in html
    assert "Asked for a refund" in html
    assert "needs human" in html
    assert 'id="needs-human-banner"' in html
    assert bob.contact.external_id not in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"needs_human__exact": "1"}, {"flagged"}),
        ({"ai_mode__exact": "paused"}, {"paused"}),
        ({"channel": "messenger"}, {"messenger"}),
        ({"status__exact": "closed"}, {"closed"}),
        ({"activity": "today"}, {"plain", "flagged", "paused", "messenger", "checkout", "closed"}),
        ({"activity": "7d"}, {"plain", "flagged", "paused", "messenger", "checkout", "closed"}),
        ({"activity": "30d"}, {"plain", "flagged", "paused", "messenger", "checkout", "closed", "old"}),
    ],
    ids=["needs-human", "ai-paused", "channel", "status", "today", "7-days", "30-days"],
)
def test_each_inbox_filter_narrows_to_alices_matching_conversations(inbox, alice_editor, query, expected):
    if query.get("activity") == "today" and timezone.now().hour == 0:
        # An hour ago was yesterday: keep the test about the filter, not the clock.
        Conversation.objects.exclude(pk=inbox["old"].pk).update(last_message_at=timezone.now())

    found = listed(login(alice_editor).get(CHANGELIST, query))

    assert found == {inbox[key].pk for key in expected}


def test_the_stage_filter_offers_alices_stages_only(inbox, alice_editor):
    client = login(alice_editor)

    found = listed(client.get(CHANGELIST, {"stage__id__exact": str(inbox["checkout_stage"].pk)}))

    assert found == {inbox["checkout"].pk}
    assert "Bob" not in client.get(CHANGELIST).content.decode()


def test_bobs_conversation_matches_no_filter_of_alices_staff(inbox, bob, alice_editor):
    client = login(alice_editor)

    for query in ({"needs_human__exact": "1"}, {"ai_mode__exact": "paused"}, {"status__exact": "closed"}, {}):
        assert bob.conversation.pk not in listed(client.get(CHANGELIST, query)), query
    assert listed(client.get(CHANGELIST, {"stage__id__exact": str(bob.stage.pk)})) == set()


def test_search_finds_a_conversation_by_contact_name_or_external_id(inbox, bob, alice_editor):
    client = login(alice_editor)

    assert listed(client.get(CHANGELIST, {"q": "Flagged"})) == {inbox["flagged"].pk}
    assert listed(client.get(CHANGELIST, {"q": "ext-Paused"})) == {inbox["paused"].pk}
    # Bob's contact is found by nobody at Alice's.
    assert listed(client.get(CHANGELIST, {"q": bob.contact.external_id})) == set()


def test_a_bad_filter_value_is_ignored_not_an_error(inbox, alice_editor):
    client = login(alice_editor)

    assert len(listed(client.get(CHANGELIST, {"activity": "forever"}))) == 7
    assert len(listed(client.get(CHANGELIST, {"channel": "<script>"}))) == 7


def test_the_inbox_runs_as_many_queries_for_twelve_conversations_as_for_two(alice, alice_editor):
    client = login(alice_editor)
    message_in(alice.conversation, "first")
    conversation_of(alice, "Second")
    client.get(CHANGELIST)

    with CaptureQueriesContext(connection) as two:
        assert len(listed(client.get(CHANGELIST))) == 2
    for n in range(10):
        message_in(conversation_of(alice, f"More {n}"), f"hello {n}")
    with CaptureQueriesContext(connection) as twelve:
        assert len(listed(client.get(CHANGELIST))) == 12

    assert len(twelve) == len(two), [q["sql"][:100] for q in twelve.captured_queries]


def test_the_inbox_preview_escapes_customer_text(alice, alice_editor):
    message_in(alice.conversation, SCRIPT)
    Contact.objects.filter(pk=alice.contact.pk).update(name=SCRIPT)

    html = login(alice_editor).get(CHANGELIST).content.decode()

    assert "<script>alert(" not in html
    assert ESCAPED in html


# -- the conversation page -----------------------------------------------------------


@pytest.fixture
def turn(alice):
    """One AI turn: the customer asks, the stage moves to checkout, data is extracted, the AI answers."""
    conversation = alice.conversation
    checkout = Stage.objects.create(business=alice.business, key="checkout", name="Checkout", order=5)
    question = message_in(conversation, "I want the large cake, for Saturday", status=MessageStatus.ANSWERED)
    calls = [
        LLMCall.objects.create(
            business=alice.business,
            conversation=conversation,
            message=question,
            stage=stage,
            purpose=purpose,
            model="gpt-4o-mini",
            prompt_tokens=prompt,
            completion_tokens=completion,
            latency_ms=200,
            cost=Decimal("0.000150"),
            outcome=LLMOutcome.OK,
        )
        for stage, purpose, prompt, completion in (
            (alice.stage, LLMPurpose.SELECTION, 300, 5),
            (checkout, LLMPurpose.EXTRACTION, 400, 20),
            (checkout, LLMPurpose.RESPONSE, 500, 40),
        )
    ]
    answer = message_in(
        conversation,
        "Great, a large cake for Saturday.",
        direction=Direction.OUT,
        author=Author.AI,
        status=MessageStatus.FAILED,
        error_code="131047",
        error="Re-engagement message",
        stage=checkout,
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        stage=checkout,
        collected_data={"size": "large", "day": "Saturday"},
        collected_data_sources={
            "size": {"message_id": str(question.pk), "at": "2026-01-01T10:00:00+00:00"},
            "day": {"message_id": str(question.pk), "at": "2026-01-01T10:00:00+00:00"},
        },
    )
    return {"question": question, "calls": calls, "answer": answer, "checkout": checkout}


def test_the_conversation_page_shows_transcript_data_stage_history_and_the_calls_of_each_turn(
    alice, turn, alice_editor
):
    response = login(alice_editor).get(page_url(alice.conversation))

    assert response.status_code == 200
    page = response.context["inbox"]
    entries = {e["message"].pk: e for e in page["entries"]}
    assert [c.pk for c in entries[turn["question"].pk]["calls"]] == [c.pk for c in turn["calls"]]
    assert entries[turn["question"].pk]["totals"]["prompt_tokens"] == 1200
    assert entries[turn["answer"].pk]["calls"] == []
    assert [(r["from"], r["stage"], r["changed"]) for r in page["stage_history"]] == [
        (None, alice.stage, False),  # the fixture's first turn: a reply call only
        (alice.stage, turn["checkout"], True),
    ]
    assert [(r["key"], r["value"], r["source"].pk) for r in page["collected"]] == [
        ("day", "Saturday", turn["question"].pk),
        ("size", "large", turn["question"].pk),
    ]
    html = response.content.decode()
    assert 'class="msg-customer"' in html
    assert 'class="msg-ai"' in html
    assert "131047 Re-engagement message" in html
    assert "Failed" in html
    assert "General (general) → Checkout (checkout)" in html
    for call in turn["calls"]:
        assert reverse("admin:conversations_llmcall_change", args=[call.pk]) in html
    assert "Stage selection" in html
    assert reverse("admin:conversations_message_change", args=[turn["question"].pk]) in html


def test_the_conversation_page_escapes_messages_collected_data_and_model_errors(alice, turn, alice_editor):
    message_in(alice.conversation, SCRIPT)
    message_in(
        alice.conversation, SCRIPT, direction=Direction.OUT, author=Author.AI, status=MessageStatus.SENT
    )
    LLMCall.objects.filter(pk=turn["calls"][0].pk).update(outcome=LLMOutcome.ERROR, error=SCRIPT)
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        collected_data={"note": SCRIPT, SCRIPT: {"nested": SCRIPT}}, handoff_reason=SCRIPT, needs_human=True
    )

    html = login(alice_editor).get(page_url(alice.conversation)).content.decode()

    assert "<script>alert(" not in html
    assert html.count(ESCAPED) >= 4


def test_the_transcript_stays_bounded_and_page_queries_do_not_grow_with_messages(alice, alice_editor):
    client = login(alice_editor)
    client.get(page_url(alice.conversation))
    with CaptureQueriesContext(connection) as few:
        client.get(page_url(alice.conversation))
    for n in range(20):
        message_in(alice.conversation, f"message {n}")
    with CaptureQueriesContext(connection) as more:
        response = client.get(page_url(alice.conversation))

    assert len(response.context["inbox"]["entries"]) == 22
    assert len(more) == len(few)


# -- actions -------------------------------------------------------------------------


def test_pause_resume_and_close_change_the_conversation_and_are_logged(alice, alice_editor):
    client = login(alice_editor)
    conversation = alice.conversation

    response = client.post(page_url(conversation, "pause"), follow=True)
    assert response.redirect_chain[-1][0] == page_url(conversation)
    assert "AI paused" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.ai_mode == AIMode.PAUSED
    assert 'value="Resume AI"' in response.content.decode()

    Conversation.objects.filter(pk=conversation.pk).update(needs_human=True)
    client.post(page_url(conversation, "resume"))
    conversation.refresh_from_db()
    assert (conversation.ai_mode, conversation.needs_human) == (AIMode.AUTO, False)

    response = client.post(page_url(conversation, "close"), follow=True)
    conversation.refresh_from_db()
    assert conversation.status == ConversationStatus.CLOSED
    assert conversation.closed_at is not None
    assert "Conversation closed." in response.content.decode()
    assert 'value="Close conversation"' not in response.content.decode()

    logged = list(
        LogEntry.objects.filter(object_id=str(conversation.pk))
        .order_by("action_time")
        .values_list("change_message", flat=True)
    )
    assert len(logged) == 3


def test_closing_twice_keeps_the_first_close_time(alice, alice_editor):
    client = login(alice_editor)
    client.post(page_url(alice.conversation, "close"))
    first = Conversation.objects.get(pk=alice.conversation.pk).closed_at

    response = client.post(page_url(alice.conversation, "close"), follow=True)

    assert "already closed" in response.content.decode()
    assert Conversation.objects.get(pk=alice.conversation.pk).closed_at == first


def test_a_staff_reply_is_sent_through_the_channel_and_pauses_the_ai(
    alice, alice_editor, fake_graph, django_capture_on_commit_callbacks
):
    Conversation.objects.filter(pk=alice.conversation.pk).update(last_inbound_at=timezone.now())
    client = login(alice_editor)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            page_url(alice.conversation, "reply"), {"text": "  A person here: yes, we do.  "}
        )

    assert response.status_code == 302
    reply = Message.objects.get(conversation=alice.conversation, author=Author.STAFF)
    assert reply.text == "A person here: yes, we do."
    assert reply.sent_by == alice_editor
    assert reply.direction == Direction.OUT
    conversation = Conversation.objects.get(pk=alice.conversation.pk)
    assert conversation.ai_mode == AIMode.PAUSED
    bodies = [r.body for r in fake_graph.requests if isinstance(r.body, dict) and "text" in r.body]
    assert [b["text"]["body"] for b in bodies] == ["A person here: yes, we do."]
    assert bodies[0]["to"] == alice.contact.external_id
    reply.refresh_from_db()
    assert reply.status == MessageStatus.SENT

    page = client.get(page_url(alice.conversation)).content.decode()
    assert 'class="msg-staff"' in page
    assert alice_editor.email in page


@pytest.mark.parametrize("text", ["", "   ", "x" * 4097], ids=["empty", "blank", "too-long"])
def test_a_bad_staff_reply_sends_nothing_and_says_why(alice, alice_editor, text):
    response = login(alice_editor).post(page_url(alice.conversation, "reply"), {"text": text}, follow=True)

    assert response.status_code == 200
    assert "The reply was not sent" in response.content.decode()
    assert not Message.objects.filter(author=Author.STAFF).exists()
    assert Conversation.objects.get(pk=alice.conversation.pk).ai_mode == AIMode.AUTO


def test_actions_answer_only_post(alice, alice_editor):
    client = login(alice_editor)

    for action in ("pause", "resume", "reply", "close"):
        assert client.get(page_url(alice.conversation, action)).status_code == 405, action


def test_actions_require_the_csrf_token(alice, alice_editor):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice_editor)

    assert client.post(page_url(alice.conversation, "pause")).status_code == 403
    assert Conversation.objects.get(pk=alice.conversation.pk).ai_mode == AIMode.AUTO


# -- roles and tenants ---------------------------------------------------------------


def test_a_viewer_reads_the_page_without_action_forms_and_cannot_post_them(alice, turn, alice_viewer):
    client = login(alice_viewer)

    response = client.get(page_url(alice.conversation))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Great, a large cake for Saturday." in html
    assert 'id="conversation-actions"' not in html
    for action in ("pause", "resume", "reply", "close"):
        assert client.post(page_url(alice.conversation, action), {"text": "hi"}).status_code == 403, action
    conversation = Conversation.objects.get(pk=alice.conversation.pk)
    assert (conversation.ai_mode, conversation.status) == (AIMode.AUTO, ConversationStatus.OPEN)
    assert not Message.objects.filter(author=Author.STAFF).exists()


def test_bobs_staff_get_404_on_alices_conversation_page_and_actions(alice, bob):
    client = login(bob.owner)

    assert client.get(page_url(alice.conversation)).status_code == 404
    for action in ("pause", "resume", "reply", "close"):
        assert client.post(page_url(alice.conversation, action), {"text": "hi"}).status_code == 404, action
    conversation = Conversation.objects.get(pk=alice.conversation.pk)
    assert (conversation.ai_mode, conversation.status) == (AIMode.AUTO, ConversationStatus.OPEN)
    assert not Message.objects.filter(author=Author.STAFF).exists()


def test_staff_with_no_business_are_refused_the_actions(alice, charlie):
    client = login(charlie)

    assert client.post(page_url(alice.conversation, "pause")).status_code == 403
    assert Conversation.objects.get(pk=alice.conversation.pk).ai_mode == AIMode.AUTO


def test_an_unknown_conversation_id_is_a_404(alice_editor):
    client = login(alice_editor)

    assert client.post("/admin/conversations/conversation/not-a-uuid/pause/").status_code == 404
    missing = "01900000-0000-7000-8000-000000000000"
    assert client.post(f"/admin/conversations/conversation/{missing}/close/").status_code == 404
