"""Storing what the webhooks carry: once, normalised, routed, and queued for processing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from businesses.models import Agent
from channels_app.adapters.whatsapp import WhatsAppAdapter
from channels_app.models import ChannelKind, WebhookEvent, WebhookEventStatus
from conversations import inbound
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
from conversations.outbound import message_outbound_create, message_send
from tests.channels import fixture, fixture_bytes, fixture_names
from tests.channels.webhook_helpers import (
    ANA,
    APP_ID,
    APP_SECRET,
    IGSID,
    PNID_2,
    PSID,
    last_event,
    make_account,
    post_bytes,
    post_fixture,
    post_json,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("meta_app")]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def stored(account, external_id: str) -> Message:
    return Message.objects.select_related("conversation__contact").get(
        channel_account=account, external_id=external_id
    )


def outbound(conversation, external_id: str | None, status: str = MessageStatus.SENT, **fields) -> Message:
    return Message.objects.create(
        business_id=conversation.business_id,
        conversation=conversation,
        channel_account_id=conversation.channel_account_id,
        direction=Direction.OUT,
        author=Author.AI,
        text="Our reply",
        external_id=external_id,
        status=status,
        **fields,
    )


def conversation_with(account, contact_id: str) -> Conversation:
    contact = Contact.objects.create(
        business_id=account.business_id, channel_account=account, external_id=contact_id
    )
    return Conversation.objects.create(
        business_id=account.business_id, contact=contact, channel_account=account
    )


# Every fixture, stored with its normalised fields

CUSTOMER_MESSAGES = [
    # channel, fixture, external id, type, text, payload subset, reply_to
    (
        "whatsapp",
        "text",
        "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA5OEZBMUQ2QTAwMDAwMDAxAA==",
        "text",
        "Oi, meu pedido ainda não chegou 😟 https://loja.example/pedido/4711",
        {},
        "",
    ),
    (
        "whatsapp",
        "reply_context",
        "wamid.A2",
        "text",
        "Sim, esse aqui 👍🏽",
        {"forwarded": True},
        "wamid.OUR_EARLIER_MESSAGE",
    ),
    (
        "whatsapp",
        "image",
        "wamid.A3",
        "image",
        "Caixa quebrada",
        {"id": "1003383421387256", "mime_type": "image/jpeg", "caption": "Caixa quebrada"},
        "",
    ),
    ("whatsapp", "audio", "wamid.A11", "audio", "", {"id": "2001", "voice": True}, ""),
    ("whatsapp", "video", "wamid.A12", "video", "unboxing", {"id": "2002", "mime_type": "video/mp4"}, ""),
    (
        "whatsapp",
        "document",
        "wamid.A13",
        "document",
        "invoice",
        {"id": "2003", "filename": "NF-123.pdf"},
        "",
    ),
    ("whatsapp", "sticker", "wamid.A14", "sticker", "", {"id": "2004", "mime_type": "image/webp"}, ""),
    (
        "whatsapp",
        "location",
        "wamid.A4",
        "location",
        "",
        {"latitude": -23.5613, "longitude": -46.6565, "name": "Loja Paulista"},
        "",
    ),
    ("whatsapp", "contacts", "wamid.A5", "contacts", "", {}, ""),
    (
        "whatsapp",
        "interactive_button_reply",
        "wamid.A6",
        "interactive",
        "Cancel",
        {"reply_type": "button_reply", "id": "cancel-order"},
        "wamid.OUR_BUTTON_MESSAGE",
    ),
    (
        "whatsapp",
        "interactive_list_reply",
        "wamid.A7",
        "interactive",
        "Priority Express",
        {"reply_type": "list_reply", "id": "priority_express", "description": "1-2 days"},
        "wamid.OUR_LIST_MESSAGE",
    ),
    (
        "whatsapp",
        "template_button",
        "wamid.A8",
        "button",
        "Stop promotions",
        {"id": "OPT_OUT"},
        "wamid.OUR_TEMPLATE",
    ),
    ("whatsapp", "unsupported", "wamid.A10", "unsupported", "", {"unsupported_type": "poll_creation"}, ""),
    ("whatsapp", "unknown", "wamid.A15", "unsupported", "", {"unsupported_type": "unknown"}, ""),
    ("messenger", "text", "m_AbC1dEf2GhI3jKl4MnO5pQ", "text", "Olá! Vocês entregam em Curitiba? 🚚", {}, ""),
    (
        "messenger",
        "quick_reply",
        "m_QuickReply1",
        "interactive",
        "Express, please",
        {"reply_type": "quick_reply", "id": "SHIP_EXPRESS"},
        "m_PreviousPageMessage",
    ),
    (
        "messenger",
        "attachment_image",
        "m_Image1",
        "image",
        "",
        {"url": "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo1.jpg"},
        "",
    ),
    ("messenger", "attachment_file", "m_File1", "document", "", {}, ""),
    ("messenger", "attachment_sticker", "m_Sticker1", "sticker", "", {"sticker_id": "369239263222822"}, ""),
    (
        "messenger",
        "attachment_fallback",
        "m_Link1",
        "text",
        "https://loja.example/produto/99",
        {"title": "Produto 99"},
        "",
    ),
    (
        "messenger",
        "postback",
        "m_PostbackMid",
        "postback",
        "Talk to an agent",
        {"id": "HANDOFF", "payload": "HANDOFF"},
        "",
    ),
    (
        "instagram",
        "text",
        "aWdfZG1fMTc4NDEwMDAwMDAwMDAwMDA6MTc4NDE0MDAwMDAwMDAwMDAwOjM0MDI4MjM2Njg0MTcxMDMwMTI0NDI3NjAxNDEyMjYwMTY4NjQ0OA==",
        "text",
        "Oi! Tem no tamanho M? 👗",
        {},
        "",
    ),
    ("instagram", "attachment", "aWdfZG1fATTACH1", "image", "", {}, ""),
    (
        "instagram",
        "story_reply",
        "aWdfZG1fSTORY1",
        "text",
        "Amei essa peça 😍",
        {
            "story": {
                "id": "17920000000000000",
                "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=999",
            }
        },
        "",
    ),
]
CONTACT_OF = {"whatsapp": ANA, "messenger": PSID, "instagram": IGSID}
# Fixtures whose storing is asserted by the dedicated tests further down.
COVERED_ELSEWHERE = {
    ("whatsapp", "batched"),
    # tests/channels/test_whatsapp_identity.py
    ("whatsapp", "system"),
    ("whatsapp", "number_withheld"),
    ("whatsapp", "number_and_bsuid"),
    ("whatsapp", "parent_bsuid"),
    ("whatsapp", "user_id_update"),
    ("whatsapp", "system_user_id"),
    ("whatsapp", "status_user_id"),
    ("whatsapp", "edit"),
    ("whatsapp", "revoke"),
    ("whatsapp", "no_sender"),
    ("whatsapp", "reaction"),
    ("whatsapp", "status_sent"),
    ("whatsapp", "status_delivered"),
    ("whatsapp", "status_read"),
    ("whatsapp", "status_failed"),
    ("whatsapp", "value_errors"),
    ("messenger", "reaction"),
    ("messenger", "echo_ours"),
    ("messenger", "echo_human"),
    ("messenger", "standby"),
    ("messenger", "delivery"),
    ("messenger", "read"),
    ("instagram", "reaction"),
    ("instagram", "echo"),
    ("instagram", "deleted"),
    ("instagram", "read"),
    ("instagram", "test_changes"),
}


def test_every_fixture_has_a_storing_test():
    every = {(channel, name) for channel in CONTACT_OF for name in fixture_names(channel)}
    covered = {(row[0], row[1]) for row in CUSTOMER_MESSAGES} | COVERED_ELSEWHERE
    assert every == covered


@pytest.mark.parametrize(
    ("channel", "name", "external_id", "mtype", "text", "payload", "reply_to"),
    CUSTOMER_MESSAGES,
    ids=[f"{c[0]}-{c[1]}" for c in CUSTOMER_MESSAGES],
)
def test_every_customer_message_fixture_is_stored_normalised_and_queued(
    alice,
    accounts,
    enqueued,
    django_capture_on_commit_callbacks,
    channel,
    name,
    external_id,
    mtype,
    text,
    payload,
    reply_to,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_fixture(channel, name)

    assert response.status_code == 200
    message = stored(accounts[channel], external_id)
    assert (message.direction, message.author, message.status) == ("in", "customer", "received")
    assert (message.type, message.text, message.reply_to_external_id) == (mtype, text, reply_to)
    assert payload.items() <= message.payload.items()
    assert message.business == alice.business
    assert message.provider_timestamp is not None
    assert message.raw and message.raw in _items(fixture(channel, name))
    assert message.conversation.contact.external_id == CONTACT_OF[channel]
    assert message.conversation.status == ConversationStatus.OPEN
    assert enqueued == [message.conversation_id]
    assert last_event().status == WebhookEventStatus.PROCESSED


def _items(payload):
    """Every message-like item of a fixture (what `raw` may be)."""
    out = []
    for entry in payload["entry"]:
        for change in entry.get("changes", []):
            out.extend(change["value"].get("messages", []))
        out.extend(entry.get("messaging", []))
        out.extend(entry.get("standby", []))
    return out


def test_shared_contact_cards_keep_every_card(accounts):
    post_fixture("whatsapp", "contacts")

    [card] = stored(accounts["whatsapp"], "wamid.A5").payload["contacts"]
    assert card["name"]["formatted_name"] == "João Lima"


def test_the_contact_gets_the_profile_name_and_the_message_the_provider_time(accounts):
    post_fixture("whatsapp", "text")
    post_fixture("messenger", "text")

    whatsapp = stored(
        accounts["whatsapp"], "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA5OEZBMUQ2QTAwMDAwMDAxAA=="
    )
    assert whatsapp.conversation.contact.name == "Ana Souza 🌻"
    assert whatsapp.provider_timestamp == at(1767225600)
    messenger = stored(accounts["messenger"], "m_AbC1dEf2GhI3jKl4MnO5pQ")
    assert messenger.provider_timestamp == at(1767228000.312)
    assert messenger.conversation.contact.name == ""


def test_one_contact_and_one_open_conversation_serve_a_customers_messages_and_the_name_refreshes(accounts):
    post_fixture("whatsapp", "text")  # "Ana Souza 🌻"
    post_fixture("whatsapp", "image")  # "Ana Souza"

    contacts = Contact.objects.filter(channel_account=accounts["whatsapp"])
    assert [(c.external_id, c.name) for c in contacts] == [(ANA, "Ana Souza")]
    assert Conversation.objects.filter(contact__in=contacts).count() == 1
    assert Message.objects.filter(channel_account=accounts["whatsapp"]).count() == 2


def test_a_closed_conversation_is_not_reused(accounts):
    post_fixture("whatsapp", "text")
    Conversation.objects.filter(channel_account=accounts["whatsapp"]).update(status=ConversationStatus.CLOSED)

    post_fixture("whatsapp", "image")

    conversations = Conversation.objects.filter(channel_account=accounts["whatsapp"])
    assert sorted(conversations.values_list("status", flat=True)) == ["closed", "open"]
    assert stored(accounts["whatsapp"], "wamid.A3").conversation.status == "open"


def test_a_new_conversation_starts_in_the_initial_stage_with_the_default_agent(alice, accounts):
    post_fixture("messenger", "text")

    conversation = stored(accounts["messenger"], "m_AbC1dEf2GhI3jKl4MnO5pQ").conversation
    assert conversation.stage == alice.stage
    assert conversation.agent == Agent.objects.get(business=alice.business, is_default=True)
    assert conversation.ai_mode == AIMode.AUTO


def test_the_channel_accounts_agent_wins_over_the_default(alice, accounts):
    agent = Agent.objects.create(business=alice.business, name="Instagram persona")
    accounts["instagram"].agent = agent
    accounts["instagram"].save()

    post_fixture("instagram", "text")

    assert Conversation.objects.get(channel_account=accounts["instagram"]).agent == agent


def test_last_inbound_at_is_the_latest_customer_time_and_never_in_the_future(accounts):
    post_fixture("whatsapp", "image")  # 1767225700
    conversation = Conversation.objects.get(channel_account=accounts["whatsapp"])
    assert conversation.last_inbound_at == at(1767225700)

    post_fixture("whatsapp", "text")  # 1767225600: older, arrives later
    conversation.refresh_from_db()
    assert conversation.last_inbound_at == at(1767225700)

    future = fixture("whatsapp", "video")
    future["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(
        int((timezone.now() + timedelta(days=30)).timestamp())
    )
    before = timezone.now()
    post_json("whatsapp", future)
    conversation.refresh_from_db()
    assert before <= conversation.last_inbound_at <= timezone.now()
    assert conversation.last_message_at <= timezone.now()


# Processing


def test_a_new_message_is_processed_end_to_end_and_without_an_llm_flagged_for_staff(
    accounts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("whatsapp", "text")

    message = stored(
        accounts["whatsapp"], "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA5OEZBMUQ2QTAwMDAwMDAxAA=="
    )
    assert message.status == MessageStatus.SKIPPED
    assert "No LLM is configured" in message.error
    assert message.conversation.needs_human is True
    assert "No LLM" in message.conversation.handoff_reason


def test_a_batched_payload_stores_every_item_and_enqueues_each_conversation_once(
    alice, accounts, enqueued, django_capture_on_commit_callbacks
):
    second = make_account(alice.business, ChannelKind.WHATSAPP, PNID_2)
    conversation = conversation_with(accounts["whatsapp"], ANA)
    ours = outbound(conversation, "wamid.OUT10")

    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("whatsapp", "batched")

    first = Message.objects.filter(channel_account=accounts["whatsapp"], direction=Direction.IN)
    assert sorted(first.values_list("external_id", flat=True)) == [
        "wamid.BATCH1",
        "wamid.BATCH2",
        "wamid.BATCH3",
    ]
    assert stored(second, "wamid.BATCH4").text == "Outro número"
    assert stored(accounts["whatsapp"], "wamid.BATCH2").conversation.contact.name == "Bruno Lima"
    assert stored(accounts["whatsapp"], "wamid.BATCH3").conversation == conversation  # Ana's open one
    ours.refresh_from_db()
    assert ours.status == MessageStatus.DELIVERED
    assert sorted(map(str, enqueued)) == sorted(
        {
            str(stored(account, mid).conversation_id)
            for account, mid in [
                (accounts["whatsapp"], "wamid.BATCH1"),
                (accounts["whatsapp"], "wamid.BATCH2"),
                (second, "wamid.BATCH4"),
            ]
        }
    )
    # wamid.OUT11 is not ours: noted, not an error.
    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert "wamid.OUT11" in event.error


def test_items_for_an_unknown_number_in_a_batch_are_noted_and_the_rest_stored(accounts):
    post_fixture("whatsapp", "batched")

    assert Message.objects.filter(channel_account=accounts["whatsapp"]).count() == 3
    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert PNID_2 in event.error


def test_a_redelivered_webhook_stores_one_row_and_enqueues_once(
    accounts, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert post_fixture("messenger", "text").status_code == 200

    assert Message.objects.filter(external_id="m_AbC1dEf2GhI3jKl4MnO5pQ").count() == 1
    assert len(enqueued) == 1
    assert WebhookEvent.objects.filter(status=WebhookEventStatus.PROCESSED).count() == 3
    assert Conversation.objects.filter(channel_account=accounts["messenger"]).count() == 1


def test_a_redelivery_after_the_conversation_closed_opens_nothing_new(accounts):
    post_fixture("messenger", "text")
    Conversation.objects.filter(channel_account=accounts["messenger"]).update(
        status=ConversationStatus.CLOSED
    )

    post_fixture("messenger", "text")

    assert Conversation.objects.filter(channel_account=accounts["messenger"]).count() == 1


def test_the_same_message_id_on_two_accounts_is_two_messages(alice, bob, accounts):
    make_account(bob.business, ChannelKind.INSTAGRAM, "17841499999999999")
    payload = fixture("instagram", "text")
    post_json("instagram", payload)
    payload["entry"][0]["id"] = "17841499999999999"
    post_json("instagram", payload)

    assert Message.objects.filter(external_id__startswith="aWdfZG1fMTc4").count() == 2
    assert Message.objects.filter(business=bob.business, external_id__startswith="aWdfZG1fMTc4").count() == 1


# Reactions, echoes, standby, unsend


@pytest.mark.parametrize("channel", ["whatsapp", "messenger", "instagram"])
def test_reactions_are_stored_skipped_and_not_processed(
    accounts, enqueued, django_capture_on_commit_callbacks, channel
):
    with django_capture_on_commit_callbacks(execute=True):
        post_fixture(channel, "reaction")
        post_fixture(channel, "reaction")

    [reaction] = Message.objects.filter(channel_account=accounts[channel])
    assert (reaction.type, reaction.status, reaction.direction) == ("reaction", "skipped", "in")
    assert reaction.error == "Reactions are not answered."
    assert reaction.payload["emoji"]
    assert enqueued == []


def test_an_echo_of_our_own_send_is_recognised_by_our_app_id(
    settings, accounts, enqueued, django_capture_on_commit_callbacks
):
    settings.META_APP_ID = APP_ID

    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("messenger", "echo_ours")

    assert not Message.objects.filter(channel_account=accounts["messenger"]).exists()
    assert enqueued == []
    assert last_event().status == WebhookEventStatus.PROCESSED


def test_an_echo_of_a_message_we_stored_is_ignored_whatever_its_app(accounts):
    conversation = conversation_with(accounts["messenger"], PSID)
    ours = outbound(conversation, "m_EchoOfOurSend")

    post_fixture("messenger", "echo_ours")

    assert list(Message.objects.filter(channel_account=accounts["messenger"])) == [ours]
    conversation.refresh_from_db()
    assert conversation.ai_mode == AIMode.AUTO


def test_an_echo_naming_our_message_in_its_metadata_is_ours(accounts):
    conversation = conversation_with(accounts["messenger"], PSID)
    ours = outbound(conversation, None, status=MessageStatus.SENDING)
    payload = fixture("messenger", "echo_ours")
    payload["entry"][0]["messaging"][0]["message"]["metadata"] = str(ours.pk)

    post_json("messenger", payload)

    assert list(Message.objects.filter(channel_account=accounts["messenger"])) == [ours]


@pytest.mark.parametrize(
    ("channel", "name", "mid"),
    [("messenger", "echo_human", "m_HumanFromInbox"), ("instagram", "echo", "aWdfZG1fECHO1")],
)
def test_a_human_reply_from_metas_inbox_is_stored_as_staff_and_pauses_the_ai(
    settings, accounts, enqueued, django_capture_on_commit_callbacks, channel, name, mid
):
    settings.META_APP_ID = APP_ID

    with django_capture_on_commit_callbacks(execute=True):
        post_fixture(channel, name)
        post_fixture(channel, name)

    message = stored(accounts[channel], mid)
    assert (message.direction, message.author, message.status) == ("out", "staff", "sent")
    assert message.conversation.contact.external_id == CONTACT_OF[channel]
    assert message.conversation.ai_mode == AIMode.PAUSED
    assert message.conversation.handoff_reason == "Staff replied from the Meta inbox"
    assert Message.objects.filter(channel_account=accounts[channel]).count() == 1
    assert enqueued == []


def test_standby_messages_are_kept_for_the_transcript_but_never_answered(
    accounts, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("messenger", "standby")

    human = stored(accounts["messenger"], "m_HumanReply")
    customer = stored(accounts["messenger"], "m_UserWhileStandby")
    assert (human.direction, human.author) == ("out", "staff")
    assert (customer.direction, customer.author, customer.status) == ("in", "customer", "skipped")
    assert customer.error == "Another app controls this thread (standby)."
    assert customer.conversation == human.conversation
    assert enqueued == []


def test_an_unsent_instagram_message_is_blanked_in_place(
    accounts, enqueued, django_capture_on_commit_callbacks
):
    post_fixture("instagram", "story_reply")
    enqueued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("instagram", "deleted")

    [message] = Message.objects.filter(channel_account=accounts["instagram"])
    assert message.external_id == "aWdfZG1fSTORY1"
    assert message.text == ""
    assert message.payload["deleted"] is True
    assert message.payload["story"]["id"] == "17920000000000000"
    assert message.status == MessageStatus.SKIPPED  # unsent before it was answered
    assert enqueued == []


def test_an_unsend_for_a_message_we_never_stored_inserts_nothing(accounts):
    post_fixture("instagram", "deleted")

    assert not Message.objects.filter(channel_account=accounts["instagram"]).exists()
    assert last_event().status == WebhookEventStatus.PROCESSED


def test_ids_longer_than_their_columns_are_noted_not_stored(accounts):
    payload = fixture("whatsapp", "batched")
    messages = payload["entry"][0]["changes"][0]["value"]["messages"]
    messages[0]["id"] = "wamid." + "x" * 300
    messages[1]["from"] = "9" * 33  # no phone number is that long

    post_json("whatsapp", payload)

    stored_ids = Message.objects.filter(channel_account=accounts["whatsapp"]).values_list(
        "external_id", flat=True
    )
    assert list(stored_ids) == ["wamid.BATCH3"]
    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert event.error.count(": invalid") == 2


def test_nul_characters_and_lone_surrogates_are_cleaned_before_storing(accounts):
    # Both are legal JSON escapes; PostgreSQL text refuses NUL and UTF-8 cannot hold a lone surrogate.
    body = fixture_bytes("messenger", "text").replace(b"Curitiba", rb"Curi\u0000tiba \ud83d")

    post_bytes("messenger", body)

    message = stored(accounts["messenger"], "m_AbC1dEf2GhI3jKl4MnO5pQ")
    assert message.text == "Olá! Vocês entregam em Curitiba ?? 🚚"
    assert message.raw["message"]["text"] == message.text
    assert last_event().status == WebhookEventStatus.PROCESSED


def test_a_lone_surrogate_in_a_routing_id_is_cleaned_before_the_lookup(accounts):
    # The account look-up used to send the raw string to the database: a failed event.
    body = fixture_bytes("whatsapp", "text").replace(
        b'"phone_number_id": "106540352242922"', rb'"phone_number_id": "\ud800"'
    )
    assert rb"\ud800" in body

    assert post_bytes("whatsapp", body).status_code == 200

    event = last_event()
    assert event.status == WebhookEventStatus.UNROUTED, event.error
    assert "no active account for '?'" in event.error


def test_the_instagram_dashboard_test_payload_routes_nowhere(accounts):
    post_fixture("instagram", "test_changes")

    assert last_event().status == WebhookEventStatus.UNROUTED


def test_value_level_errors_are_noted_on_the_event_and_change_nothing(accounts):
    post_fixture("whatsapp", "value_errors")

    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert "130429" in event.error and "Rate limit hit" in event.error
    assert not Message.objects.filter(channel_account=accounts["whatsapp"]).exists()


# Receipts


def test_whatsapp_statuses_move_our_message_forward_and_never_back(accounts):
    conversation = conversation_with(accounts["whatsapp"], ANA)
    ours = outbound(conversation, "wamid.OUT1", status=MessageStatus.SENDING)
    steps = [
        ("status_sent", "sent"),
        ("status_delivered", "delivered"),
        ("status_sent", "delivered"),
        ("status_read", "read"),
        ("status_delivered", "read"),
        ("status_sent", "read"),
    ]
    for name, expected in steps:
        post_fixture("whatsapp", name)
        ours.refresh_from_db()
        assert ours.status == expected, name


def test_read_may_skip_delivered(accounts):
    conversation = conversation_with(accounts["whatsapp"], ANA)
    ours = outbound(conversation, "wamid.OUT1")
    played = outbound(conversation, "wamid.OUT3")

    post_fixture("whatsapp", "status_read")  # OUT1 read, OUT3 played

    ours.refresh_from_db()
    played.refresh_from_db()
    assert (ours.status, played.status) == ("read", "read")


def test_a_failed_status_records_metas_code_and_text_and_flags_the_conversation(accounts):
    conversation = conversation_with(accounts["whatsapp"], ANA)
    ours = outbound(conversation, "wamid.OUT2")

    post_fixture("whatsapp", "status_failed")

    ours.refresh_from_db()
    conversation.refresh_from_db()
    assert ours.status == MessageStatus.FAILED
    assert ours.error_code == "131047"
    assert ours.error.startswith("Re-engagement message: ")
    assert "more than 24 hours" in ours.error
    assert conversation.needs_human is True
    assert "131047" in conversation.handoff_reason


def test_failed_does_not_follow_read(accounts):
    conversation = conversation_with(accounts["whatsapp"], ANA)
    ours = outbound(conversation, "wamid.OUT2", status=MessageStatus.READ)

    post_fixture("whatsapp", "status_failed")

    ours.refresh_from_db()
    conversation.refresh_from_db()
    assert (ours.status, ours.error_code, conversation.needs_human) == ("read", "", False)


def test_a_receipt_that_beats_the_send_response_finds_the_row_by_callback_data(accounts):
    conversation = conversation_with(accounts["whatsapp"], ANA)
    sending = outbound(conversation, None, status=MessageStatus.SENDING)
    payload = fixture("whatsapp", "status_delivered")
    status = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    status.update(id="wamid.NOT_RECORDED_YET", biz_opaque_callback_data=str(sending.pk))

    post_json("whatsapp", payload)

    sending.refresh_from_db()
    assert sending.status == MessageStatus.DELIVERED
    assert last_event().status == WebhookEventStatus.PROCESSED


def test_a_receipt_that_arrives_while_our_send_call_is_still_running_is_kept(
    alice, accounts, fake_graph, monkeypatch
):
    conversation = conversation_with(accounts["whatsapp"], ANA)
    Conversation.objects.filter(pk=conversation.pk).update(last_inbound_at=timezone.now())
    message = message_outbound_create(conversation=conversation, author=Author.AI, text="Oi!", enqueue=False)
    real_send = WhatsAppAdapter.send

    def send_then_meta_reports_delivery(self, *args, **kwargs):
        results = real_send(self, *args, **kwargs)
        sent = fake_graph.last.body
        payload = fixture("whatsapp", "status_delivered")
        payload["entry"][0]["changes"][0]["value"]["statuses"][0].update(
            id=results[0].external_id, biz_opaque_callback_data=sent["biz_opaque_callback_data"]
        )
        assert post_json("whatsapp", payload).status_code == 200  # before send() returns
        return results

    monkeypatch.setattr(WhatsAppAdapter, "send", send_then_meta_reports_delivery)

    message_send(message_id=message.pk)

    message.refresh_from_db()
    assert (message.status, message.external_id) == (MessageStatus.DELIVERED, "wamid.1")
    assert last_event().error == ""


def test_a_receipt_only_touches_the_routed_accounts_messages(alice, bob, accounts):
    bobs_account = make_account(bob.business, ChannelKind.WHATSAPP, "3000111")
    mine = outbound(conversation_with(accounts["whatsapp"], ANA), "wamid.OUT1")
    bobs = outbound(conversation_with(bobs_account, ANA), "wamid.OUT1")
    inbound_row = Message.objects.create(
        business=alice.business,
        conversation=mine.conversation,
        channel_account=accounts["whatsapp"],
        direction=Direction.IN,
        author=Author.CUSTOMER,
        external_id="wamid.OUT2",
        status=MessageStatus.ANSWERED,
    )

    post_fixture("whatsapp", "status_delivered")
    post_fixture("whatsapp", "status_failed")  # names an inbound message: not a receipt for it

    for row in (mine, bobs, inbound_row):
        row.refresh_from_db()
    assert (mine.status, bobs.status, inbound_row.status) == ("delivered", "sent", "answered")


def test_a_receipt_for_an_unknown_message_is_noted_and_ignored(accounts):
    post_fixture("whatsapp", "status_delivered")

    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert "wamid.OUT1" in event.error


def test_messenger_delivery_names_mids_and_read_is_a_watermark(accounts):
    conversation = conversation_with(accounts["messenger"], PSID)
    other = conversation_with(accounts["messenger"], "1111")
    first = outbound(conversation, "m_OurSend1")
    second = outbound(conversation, "m_OurSend2")
    late = outbound(conversation, "m_AfterWatermark")
    elsewhere = outbound(other, "m_ToSomeoneElse")
    before = at(1767228000)  # the read watermark is 1767228400
    Message.objects.filter(pk__in=[first.pk, second.pk, elsewhere.pk]).update(created_at=before)

    post_fixture("messenger", "delivery")
    for row in (first, second, late):
        row.refresh_from_db()
    assert (first.status, second.status, late.status) == ("delivered", "delivered", "sent")

    post_fixture("messenger", "read")
    for row in (first, second, late, elsewhere):
        row.refresh_from_db()
    assert (first.status, second.status) == ("read", "read")
    assert late.status == "sent"  # created after the watermark
    assert elsewhere.status == "sent"  # another customer


def test_an_instagram_read_names_the_message(accounts):
    ours = outbound(conversation_with(accounts["instagram"], IGSID), "aWdfZG1fOURSEND1")

    post_fixture("instagram", "read")

    ours.refresh_from_db()
    assert ours.status == MessageStatus.READ


# Failures and replay


def test_a_bug_while_storing_keeps_the_event_failed_with_no_partial_writes_and_replay_fixes_it(
    alice, accounts, monkeypatch, enqueued, django_capture_on_commit_callbacks
):
    make_account(alice.business, ChannelKind.WHATSAPP, PNID_2)
    real_store = inbound.inbound_message_store

    def buggy_store(*, account, item, enqueue=True):
        result = real_store(account=account, item=item, enqueue=enqueue)  # writes first…
        if item.external_id == "wamid.BATCH3":
            raise KeyError("parser bug")  # …then fails
        return result

    monkeypatch.setattr(inbound.storing, "inbound_message_store", buggy_store)
    counts = (Contact.objects.count(), Conversation.objects.count(), Message.objects.count())

    with django_capture_on_commit_callbacks(execute=True):
        response = post_fixture("whatsapp", "batched")

    assert response.status_code == 200
    event = last_event()
    assert event.status == WebhookEventStatus.FAILED
    assert event.error == "KeyError: 'parser bug'"
    assert event.attempts == 1 and event.processed_at is None
    assert (Contact.objects.count(), Conversation.objects.count(), Message.objects.count()) == counts
    assert enqueued == []

    monkeypatch.setattr(inbound.storing, "inbound_message_store", real_store)  # the fix
    with django_capture_on_commit_callbacks(execute=True):
        call_command("replay_webhooks")

    event.refresh_from_db()
    assert event.status == WebhookEventStatus.PROCESSED
    assert event.attempts == 2
    assert "wamid.OUT10" in event.error  # receipts for messages we never sent: noted
    assert [part.business for part in event.parts.all()] == [alice.business]
    assert Message.objects.filter(external_id__startswith="wamid.BATCH").count() == 4
    assert len(enqueued) == 3


def test_replaying_an_unrouted_event_after_connecting_the_account_stores_it(
    alice, capsys, enqueued, django_capture_on_commit_callbacks
):
    post_fixture("messenger", "text")
    event = last_event()
    assert event.status == WebhookEventStatus.UNROUTED
    account = make_account(alice.business, ChannelKind.MESSENGER, "102938475610293")

    call_command("replay_webhooks", "--status", "unrouted", "--dry-run")
    assert "Would replay 1 webhook event(s)." in capsys.readouterr().out
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.UNROUTED

    with django_capture_on_commit_callbacks(execute=True):
        call_command("replay_webhooks", "--status", "unrouted")

    assert "Replayed 1 webhook event(s): processed 1." in capsys.readouterr().out
    event.refresh_from_db()
    part = event.parts.get()
    assert (event.status, part.business, part.channel_account) == ("processed", alice.business, account)
    assert stored(account, "m_AbC1dEf2GhI3jKl4MnO5pQ").status == MessageStatus.RECEIVED
    assert len(enqueued) == 1


def test_replaying_everything_is_idempotent(accounts, capsys, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_fixture("whatsapp", "text")
        post_fixture("messenger", "echo_human")
        call_command("replay_webhooks", "--status", "all")

    assert "Replayed 2 webhook event(s): processed 2." in capsys.readouterr().out
    assert Message.objects.filter(channel_account__in=accounts.values()).count() == 2
    assert len(enqueued) == 1


def test_replay_filters_by_id_and_time(accounts, capsys):
    post_fixture("whatsapp", "text")
    post_fixture("messenger", "text")
    WebhookEvent.objects.update(status=WebhookEventStatus.FAILED)
    first = WebhookEvent.objects.order_by("created_at").first()

    call_command("replay_webhooks", "--id", str(first.pk))
    assert "Replayed 1 webhook event(s)" in capsys.readouterr().out
    assert WebhookEvent.objects.filter(status=WebhookEventStatus.FAILED).count() == 1

    call_command("replay_webhooks", "--since", (timezone.now() + timedelta(hours=1)).isoformat())
    assert "Replayed 0 webhook event(s)." in capsys.readouterr().out
    call_command("replay_webhooks", "--since", "2000-01-01", "--status", "failed")
    assert "Replayed 1 webhook event(s): processed 1." in capsys.readouterr().out


def test_replay_rejects_bad_arguments(db):
    with pytest.raises(CommandError):
        call_command("replay_webhooks", "--since", "yesterday")
    with pytest.raises(CommandError):
        call_command("replay_webhooks", "--id", "42")
    with pytest.raises(CommandError):
        call_command("replay_webhooks", "--status", "processed")


def test_a_replayed_per_account_event_stays_limited_to_its_account(alice, bob):
    own = make_account(alice.business, ChannelKind.WHATSAPP, "106540352242922", app_secret="alice-own-secret")
    post_bytes("whatsapp", fixture_bytes("whatsapp", "batched"), account=own, secret="alice-own-secret")
    victim = make_account(bob.business, ChannelKind.WHATSAPP, PNID_2)  # connected afterwards

    call_command("replay_webhooks", "--status", "all")

    assert Message.objects.filter(channel_account=own).count() == 3
    assert not Message.objects.filter(channel_account=victim).exists()


def test_a_replayed_event_from_an_account_url_stays_limited_even_without_its_own_secret(alice, bob, settings):
    settings.META_APP_SECRET = APP_SECRET
    own = make_account(alice.business, ChannelKind.WHATSAPP, "106540352242922")  # global secret
    post_bytes("whatsapp", fixture_bytes("whatsapp", "batched"), account=own)
    event = WebhookEvent.objects.get()
    assert event.received_for_id == own.pk
    victim = make_account(bob.business, ChannelKind.WHATSAPP, PNID_2)  # connected afterwards

    call_command("replay_webhooks", "--status", "all")

    assert Message.objects.filter(channel_account=own).count() == 3
    assert not Message.objects.filter(channel_account=victim).exists()
