"""A WhatsApp conversation end to end, through the real doors.

Signed webhooks go to /webhooks/whatsapp/, tasks run in-process after commit,
the real `openai` client talks to the fake OpenAI server and the real
`requests` adapter to the fake Graph API.
"""

from __future__ import annotations

import time

import pytest

from conversations.models import (
    AIMode,
    Author,
    Conversation,
    Direction,
    LLMCall,
    LLMOutcome,
    Message,
    MessageStatus,
)
from stages.models import Stage
from templates_app.defaults import platform_templates_seed
from tests.e2e import whatsapp
from tests.fakes.openai_server import Reply

APP_SECRET = "e2e-app-secret"
CUSTOMER = "5511987654321"

BOOKING_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "party_size": {"type": "integer", "minimum": 1, "maximum": 20},
    },
    "required": ["name", "party_size"],
}


@pytest.fixture
def shop(alice, settings, fake_llm, fake_graph):
    settings.META_APP_SECRET = APP_SECRET
    platform_templates_seed()
    booking = Stage.objects.create(
        business=alice.business,
        key="booking",
        name="Booking",
        description="The customer wants to book a table.",
        order=1,
        data_schema=BOOKING_SCHEMA,
    )
    Stage.objects.create(
        business=alice.business,
        key="human",
        name="Staff",
        description="Complaints.",
        order=2,
        is_handoff=True,
    )
    alice.business.ai_settings.burst_window_seconds = 0
    alice.business.ai_settings.fallback_text = "A person from our team will answer you shortly."
    alice.business.ai_settings.save()
    return alice, booking


_counter = iter(range(1, 10_000))


def customer_says(tenant, text: str, django_capture_on_commit_callbacks) -> str:
    wamid = f"wamid.e2e.{next(_counter)}"
    payload = whatsapp.text_message(
        tenant.channel.external_id, wa_id=CUSTOMER, wamid=wamid, text=text, name="Ana Souza"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = whatsapp.post_signed(payload, APP_SECRET)
    assert response.status_code == 200
    return wamid


def sent_texts(fake_graph) -> list[str]:
    texts = []
    for request in fake_graph.requests:
        body = request.body or {}
        if body.get("type") == "text":
            texts.append(body["text"]["body"])
        elif body.get("type") == "interactive":
            texts.append(body["interactive"]["body"]["text"])
    return texts


def conversation_of(tenant) -> Conversation:
    return Conversation.objects.get(
        contact__external_id=CUSTOMER, channel_account=tenant.channel, status="open"
    )


def test_a_scripted_booking_moves_stage_extracts_data_and_replies(
    shop, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    tenant, booking = shop

    fake_llm.on("selection", {"stage": "general"})
    fake_llm.on("response", {"reply": "Hello Ana! How can I help?", "quick_replies": []})
    customer_says(tenant, "Hi there", django_capture_on_commit_callbacks)

    fake_llm.on("selection", {"stage": "booking"})
    fake_llm.on("extraction", {"name": "Ana", "party_size": None})
    fake_llm.on("response", {"reply": "Lovely, Ana! For how many people?", "quick_replies": ["2", "4", "6"]})
    second = customer_says(tenant, "I'd like to book a table, I'm Ana", django_capture_on_commit_callbacks)

    fake_llm.on("selection", {"stage": "booking"})
    fake_llm.on("extraction", {"name": None, "party_size": 4})
    fake_llm.on("response", {"reply": "Booked for 4. See you soon!", "quick_replies": []})
    third = customer_says(tenant, "4 people", django_capture_on_commit_callbacks)

    conversation = conversation_of(tenant)
    assert conversation.stage == booking
    assert conversation.collected_data == {"name": "Ana", "party_size": 4}
    second_message = Message.objects.get(external_id=second)
    third_message = Message.objects.get(external_id=third)
    assert conversation.collected_data_sources["name"]["message_id"] == str(second_message.pk)
    assert conversation.collected_data_sources["party_size"]["message_id"] == str(third_message.pk)

    assert sent_texts(fake_graph) == [
        "Hello Ana! How can I help?",
        "Lovely, Ana! For how many people?",
        "Booked for 4. See you soon!",
    ]
    buttons = [r.body for r in fake_graph.requests if (r.body or {}).get("type") == "interactive"]
    assert [b["reply"]["title"] for b in buttons[0]["interactive"]["action"]["buttons"]] == ["2", "4", "6"]

    inbound = Message.objects.filter(conversation=conversation, direction=Direction.IN)
    assert set(inbound.values_list("status", flat=True)) == {MessageStatus.ANSWERED}
    outbound = Message.objects.filter(conversation=conversation, direction=Direction.OUT, author=Author.AI)
    assert set(outbound.values_list("status", flat=True)) == {MessageStatus.SENT}
    assert all(m.external_id and m.external_id.startswith("wamid.") for m in outbound)

    calls = LLMCall.objects.filter(conversation=conversation)
    assert calls.count() == len(fake_llm.requests)
    assert set(calls.values_list("outcome", flat=True)) == {LLMOutcome.OK}
    for call in calls:
        assert call.prompt_tokens and call.completion_tokens is not None
        assert call.cost is not None  # the default model is in the price table
        assert call.template_id and call.template_version == call.template.version


def test_a_delivery_receipt_updates_the_reply(shop, fake_llm, fake_graph, django_capture_on_commit_callbacks):
    tenant, _ = shop
    fake_llm.on("response", {"reply": "Hi!", "quick_replies": []})
    customer_says(tenant, "Hello", django_capture_on_commit_callbacks)
    reply = Message.objects.get(conversation=conversation_of(tenant), direction=Direction.OUT)
    payload = whatsapp.status(
        tenant.channel.external_id, wamid=reply.external_id, state="read", wa_id=CUSTOMER
    )
    with django_capture_on_commit_callbacks(execute=True):  # the receipt is applied after the door commits
        response = whatsapp.post_signed(payload, APP_SECRET)
    assert response.status_code == 200
    reply.refresh_from_db()
    assert reply.status == MessageStatus.READ


def test_an_llm_outage_hands_off_once_and_the_message_is_answered_after_recovery(
    shop, fake_llm, fake_graph, django_capture_on_commit_callbacks, settings
):
    tenant, _ = shop
    settings.LLM_MAX_RETRIES = 0
    fake_llm.responder("selection", lambda body: Reply.error(503))
    wamid = customer_says(tenant, "Hello?", django_capture_on_commit_callbacks)

    message = Message.objects.get(external_id=wamid)
    assert message.status == MessageStatus.FAILED
    conversation = conversation_of(tenant)
    assert conversation.ai_mode == AIMode.PAUSED
    assert conversation.needs_human
    assert "LLM" in conversation.handoff_reason
    assert sent_texts(fake_graph) == ["A person from our team will answer you shortly."]
    assert LLMCall.objects.filter(conversation=conversation, outcome=LLMOutcome.ERROR).exists()

    # Still paused: another message is kept, not answered, and no second holding message.
    customer_says(tenant, "Anyone there?", django_capture_on_commit_callbacks)
    assert len(sent_texts(fake_graph)) == 1

    # The LLM recovers; staff resume the AI through the API: both messages get one answer.
    fake_llm.reset()
    fake_llm.on("response", {"reply": "Sorry for the wait! How can I help?", "quick_replies": []})
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client().post(f"/api/v1/conversations/{conversation.pk}/resume-ai/")
    assert response.status_code == 200
    assert sent_texts(fake_graph)[-1] == "Sorry for the wait! How can I help?"
    assert len(sent_texts(fake_graph)) == 2
    statuses = set(
        Message.objects.filter(conversation=conversation, direction=Direction.IN).values_list(
            "status", flat=True
        )
    )
    assert statuses == {MessageStatus.ANSWERED}


def test_a_handoff_stage_pauses_the_ai_and_sends_the_holding_message_once(
    shop, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    tenant, _ = shop
    fake_llm.on("selection", {"stage": "human"})
    fake_llm.on("response", {"reply": "I'm passing you to a colleague.", "quick_replies": []})
    customer_says(tenant, "This is unacceptable, I want a manager", django_capture_on_commit_callbacks)
    conversation = conversation_of(tenant)
    assert conversation.ai_mode == AIMode.PAUSED
    assert conversation.needs_human
    assert sent_texts(fake_graph) == [
        "I'm passing you to a colleague.",
        "A person from our team will answer you shortly.",
    ]


def test_a_customer_without_a_phone_number_is_answered_by_bsuid(
    shop, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    tenant, _ = shop
    bsuid = "US.13491208655302741918"
    payload = whatsapp.envelope(
        tenant.channel.external_id,
        {
            "contacts": [{"profile": {"name": "Bia", "username": "bia.flowers"}, "user_id": bsuid}],
            "messages": [
                {
                    "id": "wamid.e2e.bsuid",
                    "timestamp": str(int(time.time())),  # inside the 24-hour window
                    "type": "text",
                    "text": {"body": "Oi!"},
                }
            ],
        },
    )
    fake_llm.on("response", {"reply": "Oi Bia! How can I help?", "quick_replies": []})

    with django_capture_on_commit_callbacks(execute=True):
        assert whatsapp.post_signed(payload, APP_SECRET).status_code == 200

    replies = [r.body for r in fake_graph.requests if (r.body or {}).get("type") == "text"]
    assert [r["text"]["body"] for r in replies] == ["Oi Bia! How can I help?"]
    assert replies[0]["recipient"] == bsuid and "to" not in replies[0]
    conversation = Conversation.objects.get(contact__bsuid=bsuid)
    assert Message.objects.get(external_id="wamid.e2e.bsuid").status == MessageStatus.ANSWERED

    # A staff member takes over: the staff reply goes the same way.
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client().post(
            f"/api/v1/conversations/{conversation.pk}/messages/", {"text": "Maria here"}, format="json"
        )
    assert response.status_code == 201
    staff = fake_graph.last.body
    assert staff["recipient"] == bsuid and "to" not in staff
    assert staff["text"]["body"] == "Maria here"
