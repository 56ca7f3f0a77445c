from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_app.adapters import (
    ADAPTERS,
    DeliveryStatus,
    InboundMessage,
    MessageType,
    ParsedBatch,
    get_adapter,
)
from channels_app.adapters.payload import INTERNAL_PROBLEM
from tests.channels import fixture, fixture_names

PNID = "106540352242922"
ANA = "5511987654321"
PAGE = "102938475610293"
PSID = "7392015648120394"
IGID = "17841400000000000"
IGSID = "6841100000000000"


def parse(channel: str, name: str) -> ParsedBatch:
    batch = get_adapter(channel).parse(fixture(channel, name))
    assert batch.problems == []
    return batch


def only_message(channel: str, name: str) -> InboundMessage:
    batch = parse(channel, name)
    assert batch.statuses == [] and batch.errors == []
    assert len(batch.messages) == 1
    return batch.messages[0]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


@pytest.mark.parametrize(
    ("channel", "name"),
    [
        (channel, name)
        for channel in ("whatsapp", "messenger", "instagram")
        for name in fixture_names(channel)
    ],
)
def test_every_fixture_parses_into_items_without_problems(channel: str, name: str) -> None:
    batch = parse(channel, name)
    assert batch.messages or batch.statuses or batch.errors or batch.identity_updates or batch.rejected
    for message in batch.messages:
        assert message.timestamp.tzinfo is not None
        assert message.raw  # the original item is kept for the transcript
        json.dumps(message.payload)  # storable in a JSONField


# WhatsApp


def test_whatsapp_text_is_normalized_with_routing_contact_and_time() -> None:
    message = only_message("whatsapp", "text")
    assert message.routing_id == PNID
    assert message.contact_external_id == ANA
    assert message.contact_name == "Ana Souza 🌻"
    assert message.external_id == "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYFjNFQjA5OEZBMUQ2QTAwMDAwMDAxAA=="
    assert message.timestamp == at(1767225600)
    assert message.type == MessageType.TEXT
    assert message.text == "Oi, meu pedido ainda não chegou 😟 https://loja.example/pedido/4711"
    assert message.reply_to_external_id is None
    assert message.raw["id"] == message.external_id
    assert (message.is_echo, message.is_standby, message.is_deleted) == (False, False, False)


def test_a_batched_payload_yields_every_message_and_status_of_every_entry_and_change() -> None:
    batch = parse("whatsapp", "batched")
    assert [m.external_id for m in batch.messages] == [
        "wamid.BATCH1",
        "wamid.BATCH2",
        "wamid.BATCH3",
        "wamid.BATCH4",
    ]
    assert [m.routing_id for m in batch.messages] == [PNID, PNID, PNID, "106540352242999"]
    assert [m.contact_name for m in batch.messages] == ["Ana Souza", "Bruno Lima", "Ana Souza", "Carla"]
    assert batch.messages[1].type == MessageType.IMAGE
    assert [(s.external_id, s.status) for s in batch.statuses] == [
        ("wamid.OUT10", DeliveryStatus.DELIVERED),
        ("wamid.OUT11", DeliveryStatus.READ),
    ]
    assert batch.statuses[1].contact_external_id == "5521998877665"


def test_a_quoted_reply_carries_the_quoted_message_id_and_forwarded_flag() -> None:
    message = only_message("whatsapp", "reply_context")
    assert message.reply_to_external_id == "wamid.OUR_EARLIER_MESSAGE"
    assert message.text == "Sim, esse aqui 👍🏽"
    assert message.payload == {"forwarded": True}


@pytest.mark.parametrize(
    ("name", "mtype", "text", "payload"),
    [
        (
            "image",
            MessageType.IMAGE,
            "Caixa quebrada",
            {
                "id": "1003383421387256",
                "mime_type": "image/jpeg",
                "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=",
                "caption": "Caixa quebrada",
                "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1003383421387256",
            },
        ),
        (
            "audio",
            MessageType.AUDIO,
            "",
            {"id": "2001", "mime_type": "audio/ogg; codecs=opus", "sha256": "aGFzaA==", "voice": True},
        ),
        (
            "video",
            MessageType.VIDEO,
            "unboxing",
            {"id": "2002", "mime_type": "video/mp4", "sha256": "aGFzaA==", "caption": "unboxing"},
        ),
        (
            "document",
            MessageType.DOCUMENT,
            "invoice",
            {
                "id": "2003",
                "mime_type": "application/pdf",
                "sha256": "aGFzaA==",
                "caption": "invoice",
                "filename": "NF-123.pdf",
            },
        ),
        (
            "sticker",
            MessageType.STICKER,
            "",
            {"id": "2004", "mime_type": "image/webp", "sha256": "aGFzaA==", "animated": False},
        ),
    ],
)
def test_whatsapp_media_messages_carry_the_media_fields(
    name: str, mtype: MessageType, text: str, payload: dict[str, Any]
) -> None:
    message = only_message("whatsapp", name)
    assert (message.type, message.text, message.payload) == (mtype, text, payload)


def test_a_location_without_a_type_field_is_recognized_by_its_key() -> None:
    message = only_message("whatsapp", "location")
    assert "type" not in message.raw
    assert message.type == MessageType.LOCATION
    assert message.payload == {
        "latitude": -23.5613,
        "longitude": -46.6565,
        "name": "Loja Paulista",
        "address": "Av. Paulista, 1000",
        "url": "https://example.com",
    }


def test_shared_contact_cards_are_not_confused_with_the_sender_profile() -> None:
    message = only_message("whatsapp", "contacts")
    assert message.type == MessageType.CONTACTS
    assert message.contact_name == "Ana Souza"
    [card] = message.payload["contacts"]
    assert card["name"]["formatted_name"] == "João Lima"
    assert card["phones"][0]["wa_id"] == "5511912345678"


def test_an_interactive_button_reply_gives_its_id_and_title() -> None:
    message = only_message("whatsapp", "interactive_button_reply")
    assert message.type == MessageType.INTERACTIVE
    assert message.text == "Cancel"
    assert message.payload == {"reply_type": "button_reply", "id": "cancel-order", "title": "Cancel"}
    assert message.reply_to_external_id == "wamid.OUR_BUTTON_MESSAGE"


def test_an_interactive_list_reply_gives_id_title_and_description() -> None:
    message = only_message("whatsapp", "interactive_list_reply")
    assert message.text == "Priority Express"
    assert message.payload == {
        "reply_type": "list_reply",
        "id": "priority_express",
        "title": "Priority Express",
        "description": "1-2 days",
    }


def test_a_template_quick_reply_button_is_a_button_message() -> None:
    message = only_message("whatsapp", "template_button")
    assert message.type == MessageType.BUTTON
    assert message.text == "Stop promotions"
    assert message.payload["id"] == "OPT_OUT"
    assert message.reply_to_external_id == "wamid.OUR_TEMPLATE"


def test_a_whatsapp_reaction_names_the_emoji_and_the_target_message() -> None:
    message = only_message("whatsapp", "reaction")
    assert message.type == MessageType.REACTION
    assert message.payload == {"emoji": "👍", "message_id": "wamid.OUR_MESSAGE", "action": "react"}


def test_a_removed_whatsapp_reaction_has_no_emoji_and_the_unreact_action() -> None:
    payload = fixture("whatsapp", "reaction")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["reaction"]["emoji"] = ""
    [message] = get_adapter("whatsapp").parse(payload).messages
    assert message.payload["action"] == "unreact"


@pytest.mark.parametrize(
    ("name", "unsupported_type"), [("unsupported", "poll_creation"), ("unknown", "unknown")]
)
def test_unsupported_messages_in_current_and_legacy_form_keep_type_and_error_code(
    name: str, unsupported_type: str
) -> None:
    message = only_message("whatsapp", name)
    assert message.type == MessageType.UNSUPPORTED
    assert message.payload["unsupported_type"] == unsupported_type
    assert message.payload["errors"][0]["code"] == 131051
    assert message.payload["errors"][0]["details"]


def test_a_number_change_is_an_identity_update_not_a_customer_message() -> None:
    batch = parse("whatsapp", "system")

    assert batch.messages == []
    (update,) = batch.identity_updates
    assert (update.previous.phone, update.current.phone) == ("5511987654321", "5511900000000")


@pytest.mark.parametrize(
    ("name", "status", "seconds"),
    [
        ("status_sent", DeliveryStatus.SENT, 1767227000),
        ("status_delivered", DeliveryStatus.DELIVERED, 1767227002),
        ("status_read", DeliveryStatus.READ, 1767227010),
    ],
)
def test_whatsapp_statuses_are_receipts_for_our_messages(
    name: str, status: DeliveryStatus, seconds: int
) -> None:
    batch = parse("whatsapp", name)
    assert batch.messages == []
    first = batch.statuses[0]
    assert (first.routing_id, first.external_id, first.status) == (PNID, "wamid.OUT1", status)
    assert first.timestamp == at(seconds)
    assert first.contact_external_id == ANA
    assert first.error_code is None


def test_a_played_voice_note_counts_as_read() -> None:
    statuses = parse("whatsapp", "status_read").statuses
    assert [(s.external_id, s.status) for s in statuses] == [
        ("wamid.OUT1", DeliveryStatus.READ),
        ("wamid.OUT3", DeliveryStatus.READ),
    ]


def test_a_failed_status_carries_the_error_code_title_and_details() -> None:
    [status] = parse("whatsapp", "status_failed").statuses
    assert status.status == DeliveryStatus.FAILED
    assert status.external_id == "wamid.OUT2"
    assert status.error_code == 131047
    assert status.error_title == "Re-engagement message"
    assert "more than 24 hours" in status.error_message


def test_value_level_errors_become_channel_errors() -> None:
    batch = parse("whatsapp", "value_errors")
    assert batch.messages == [] and batch.statuses == []
    [error] = batch.errors
    assert (error.routing_id, error.code, error.title) == (PNID, 130429, "Rate limit hit")
    assert "too many messages" in error.details


def test_coexistence_echoes_are_parsed_as_echoes_to_the_customer() -> None:
    payload = fixture("whatsapp", "text")
    change = payload["entry"][0]["changes"][0]
    change["field"] = "smb_message_echoes"
    item = change["value"].pop("messages")[0]
    item.update({"from": "15550783881", "to": ANA})
    change["value"]["message_echoes"] = [item]
    [message] = get_adapter("whatsapp").parse(payload).messages
    assert message.is_echo is True
    assert message.contact_external_id == ANA


def test_other_whatsapp_webhook_fields_are_ignored_not_problems() -> None:
    payload = fixture("whatsapp", "text")
    payload["entry"][0]["changes"][0]["field"] = "account_update"
    batch = get_adapter("whatsapp").parse(payload)
    assert batch.messages == [] and batch.problems == []
    assert batch.ignored == ["entry[0].changes[0]: field 'account_update'"]


def test_a_message_without_an_id_is_a_problem_and_the_rest_of_the_batch_survives() -> None:
    payload = fixture("whatsapp", "batched")
    del payload["entry"][0]["changes"][0]["value"]["messages"][1]["id"]
    batch = get_adapter("whatsapp").parse(payload)
    assert [m.external_id for m in batch.messages] == ["wamid.BATCH1", "wamid.BATCH3", "wamid.BATCH4"]
    assert batch.problems == ["entry[0].changes[0].value.messages[1]: message without id"]
    assert len(batch.statuses) == 2


# Messenger


def test_messenger_text_uses_the_page_as_routing_and_the_psid_as_contact() -> None:
    message = only_message("messenger", "text")
    assert message.routing_id == PAGE
    assert message.contact_external_id == PSID
    assert message.external_id == "m_AbC1dEf2GhI3jKl4MnO5pQ"
    assert message.timestamp == at(1767228000.312)
    assert (message.type, message.text) == (MessageType.TEXT, "Olá! Vocês entregam em Curitiba? 🚚")


def test_a_messenger_quick_reply_gives_its_payload_as_the_reply_id() -> None:
    message = only_message("messenger", "quick_reply")
    assert message.type == MessageType.INTERACTIVE
    assert message.text == "Express, please"
    assert message.payload == {"reply_type": "quick_reply", "id": "SHIP_EXPRESS", "title": "Express, please"}
    assert message.reply_to_external_id == "m_PreviousPageMessage"


def test_messenger_attachments_keep_every_attachment_and_type_from_the_first() -> None:
    message = only_message("messenger", "attachment_image")
    assert message.type == MessageType.IMAGE
    assert message.payload["url"] == "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo1.jpg"
    assert [a["url"] for a in message.payload["attachments"]] == [
        "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo1.jpg",
        "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo2.jpg",
    ]


def test_a_messenger_file_is_a_document() -> None:
    message = only_message("messenger", "attachment_file")
    assert message.type == MessageType.DOCUMENT
    assert message.payload["url"].endswith("invoice.pdf")


def test_a_sticker_sent_as_both_sticker_and_image_is_one_sticker() -> None:
    message = only_message("messenger", "attachment_sticker")
    assert message.type == MessageType.STICKER
    assert message.payload["sticker_id"] == "369239263222822"


def test_a_shared_link_fallback_is_text_with_its_url_and_title() -> None:
    message = only_message("messenger", "attachment_fallback")
    assert message.type == MessageType.TEXT
    assert message.text == "https://loja.example/produto/99"
    assert message.payload["title"] == "Produto 99"


def test_a_postback_gives_title_payload_and_referral() -> None:
    message = only_message("messenger", "postback")
    assert message.type == MessageType.POSTBACK
    assert message.external_id == "m_PostbackMid"
    assert message.text == "Talk to an agent"
    assert message.payload["id"] == message.payload["payload"] == "HANDOFF"
    assert message.payload["referral"]["ref"] == "spring_campaign"


def test_an_echo_of_our_own_send_names_our_app_and_swaps_sender_and_recipient() -> None:
    message = only_message("messenger", "echo_ours")
    assert message.is_echo is True
    assert message.echo_app_id == "1517776481860111"
    assert message.contact_external_id == PSID
    assert message.routing_id == PAGE
    assert message.payload == {"metadata": "ticket-4711"}


def test_an_echo_of_a_human_reply_names_the_inbox_app() -> None:
    message = only_message("messenger", "echo_human")
    assert message.is_echo is True
    assert message.echo_app_id == "263902037430900"
    assert message.contact_external_id == PSID
    assert message.text == "Oi, aqui é a Maria 🙂"


def test_a_delivery_receipt_gives_one_status_per_mid_with_the_watermark() -> None:
    statuses = parse("messenger", "delivery").statuses
    assert [(s.external_id, s.status) for s in statuses] == [
        ("m_OurSend1", DeliveryStatus.DELIVERED),
        ("m_OurSend2", DeliveryStatus.DELIVERED),
    ]
    assert all(s.watermark == at(1767228300) and s.contact_external_id == PSID for s in statuses)


def test_a_messenger_read_receipt_is_a_watermark_without_a_message_id() -> None:
    [status] = parse("messenger", "read").statuses
    assert status.status == DeliveryStatus.READ
    assert status.external_id is None
    assert status.watermark == at(1767228400)
    assert (status.routing_id, status.contact_external_id) == (PAGE, PSID)


def test_a_delivery_without_mids_still_reports_the_watermark() -> None:
    payload = fixture("messenger", "delivery")
    del payload["entry"][0]["messaging"][0]["delivery"]["mids"]
    [status] = get_adapter("messenger").parse(payload).statuses
    assert status.external_id is None
    assert status.watermark == at(1767228300)


def test_a_messenger_reaction_gets_a_stable_id_so_redeliveries_dedup() -> None:
    message = only_message("messenger", "reaction")
    assert message.type == MessageType.REACTION
    assert message.payload == {
        "message_id": "m_OurSend1",
        "emoji": "❤️",
        "reaction": "love",
        "action": "react",
    }
    assert message.external_id == only_message("messenger", "reaction").external_id
    unreact = fixture("messenger", "reaction")
    unreact["entry"][0]["messaging"][0]["reaction"] = {"mid": "m_OurSend1", "action": "unreact"}
    [removed] = get_adapter("messenger").parse(unreact).messages
    assert removed.payload["action"] == "unreact" and removed.payload["emoji"] == ""
    assert removed.external_id != message.external_id


def test_standby_events_are_flagged_including_echoes_from_the_owning_app() -> None:
    human, user = parse("messenger", "standby").messages
    assert (human.is_standby, human.is_echo, human.echo_app_id) == (True, True, "263902037430900")
    assert (user.is_standby, user.is_echo, user.contact_external_id) == (True, False, PSID)


def test_handover_and_optin_events_are_ignored_and_unknown_events_are_problems() -> None:
    payload = fixture("messenger", "text")
    event = payload["entry"][0]["messaging"][0]
    del event["message"]
    payload["entry"][0]["messaging"] = [
        {**event, "pass_thread_control": {"new_owner_app_id": "1"}},
        {**event, "optin": {"ref": "x"}},
        {**event, "something_new": {}},
    ]
    batch = get_adapter("messenger").parse(payload)
    assert batch.messages == []
    assert len(batch.ignored) == 2
    assert batch.problems == ["entry[0].messaging[2]: unknown event ['something_new']"]


# Instagram


def test_instagram_text_uses_the_ig_account_as_routing_and_igsid_as_contact() -> None:
    message = only_message("instagram", "text")
    assert (message.routing_id, message.contact_external_id) == (IGID, IGSID)
    assert message.text == "Oi! Tem no tamanho M? 👗"
    assert message.external_id.startswith("aWdfZG1f")


def test_an_instagram_attachment_is_typed_by_its_attachment() -> None:
    message = only_message("instagram", "attachment")
    assert message.type == MessageType.IMAGE
    assert message.payload["url"].startswith("https://lookaside.fbsbx.com/")


def test_a_story_reply_keeps_the_story_id_and_url() -> None:
    message = only_message("instagram", "story_reply")
    assert message.text == "Amei essa peça 😍"
    assert message.payload["story"] == {
        "id": "17920000000000000",
        "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=999",
    }
    assert message.reply_to_external_id is None


def test_an_unsent_instagram_message_is_flagged_deleted_with_the_same_mid() -> None:
    message = only_message("instagram", "deleted")
    assert message.is_deleted is True
    assert message.external_id == only_message("instagram", "story_reply").external_id
    assert message.text == ""


def test_an_instagram_echo_has_the_customer_as_contact() -> None:
    message = only_message("instagram", "echo")
    assert message.is_echo is True
    assert (message.routing_id, message.contact_external_id) == (IGID, IGSID)


def test_an_instagram_read_names_the_message_that_was_seen() -> None:
    [status] = parse("instagram", "read").statuses
    assert (status.external_id, status.status, status.watermark) == (
        "aWdfZG1fOURSEND1",
        DeliveryStatus.READ,
        None,
    )
    assert status.contact_external_id == IGSID


def test_an_instagram_reaction_targets_our_message() -> None:
    message = only_message("instagram", "reaction")
    assert message.type == MessageType.REACTION
    assert message.payload["message_id"] == "aWdfZG1fOURSEND1"
    assert message.payload["emoji"] == "❤️"


def test_the_dashboard_test_payload_in_changes_form_is_parsed_like_a_dm() -> None:
    message = only_message("instagram", "test_changes")
    assert (message.routing_id, message.contact_external_id, message.external_id) == (
        "0",
        "12334",
        "random_mid",
    )
    assert message.text == "random_text"
    assert message.timestamp == at(1527459824)


def test_each_adapter_rejects_the_other_products_payloads_as_a_problem() -> None:
    assert get_adapter("whatsapp").parse(fixture("messenger", "text")).problems
    assert get_adapter("messenger").parse(fixture("whatsapp", "text")).problems
    assert get_adapter("messenger").parse(fixture("instagram", "text")).problems


# API channel


def test_the_api_channel_parses_contact_text_name_and_scopes_the_client_id_to_the_contact() -> None:
    api = get_adapter("api")
    batch = api.parse({"contact": "cust-1", "text": "Olá 👋", "name": "Ana", "client_message_id": "1"})
    [message] = batch.messages
    assert (message.contact_external_id, message.contact_name, message.text) == ("cust-1", "Ana", "Olá 👋")
    assert message.type == MessageType.TEXT and message.routing_id == ""
    assert message.payload == {"client_message_id": "1"}
    again = api.parse({"contact": "cust-1", "text": "Olá 👋", "client_message_id": "1"}).messages[0]
    other = api.parse({"contact": "cust-2", "text": "hi", "client_message_id": "1"}).messages[0]
    assert again.external_id == message.external_id
    assert other.external_id != message.external_id


def test_the_api_channel_generates_an_id_without_a_client_id() -> None:
    api = get_adapter("api")
    first, second = (api.parse({"contact": "c", "text": "x"}).messages[0] for _ in range(2))
    assert first.external_id.startswith("api.") and first.external_id != second.external_id


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"text": "no contact"},
        {"contact": "c"},
        {"contact": "c", "text": "   "},
        {"contact": 5, "text": "x"},
        {"contact": "c", "text": "x", "name": ["list"]},
        {"contact": "c", "text": "x", "client_message_id": {"a": 1}},
    ],
)
def test_the_api_channel_reports_invalid_bodies_as_problems(payload: Any) -> None:
    batch = get_adapter("api").parse(payload)
    assert batch.messages == [] and batch.problems


# Fuzzing: no shape inside a valid envelope may raise, and results stay well typed.


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


# Every key the fixtures use, plus the ones only rarer payloads carry.
VOCAB = sorted(
    set().union(
        *(_keys(fixture(c, n)) for c in ("whatsapp", "messenger", "instagram") for n in fixture_names(c))
    )
    | {"nfm_reply", "response_json", "is_unsupported", "user_ref", "coordinates", "lat", "long", "optin"}
    | {
        "message_echoes",
        "referred_product",
        "frequently_forwarded",
        "contact",
        "client_message_id",
        "details",
    }
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(
        [
            "text",
            "image",
            "interactive",
            "button_reply",
            "list_reply",
            "unsupported",
            "failed",
            "played",
            "messages",
            "1767225600",
            "1767228000312",
            "-1",
            "9" * 40,
            "unreact",
            "fallback",
            "sticker",
        ]
    )
)
KEYS = st.sampled_from(VOCAB) | st.text(max_size=3)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=10,
)
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def item(required: dict[str, Any]) -> st.SearchStrategy[Any]:
    """A dict with the keys the parser looks for first, then random extra content."""
    base = st.fixed_dictionaries({k: st.just(v) | JSON for k, v in required.items()})
    return st.builds(lambda b, extra: {**extra, **b}, base, st.dictionaries(KEYS, JSON, max_size=3)) | JSON


WA_MESSAGE = item({"from": ANA, "id": "wamid.F", "timestamp": "1767225600", "type": "text"})
WA_STATUS = item({"id": "wamid.S", "status": "failed", "timestamp": "1767225600", "errors": []})
WA_PAYLOAD = st.builds(
    lambda field, extra, messages, statuses: {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": field,
                        "value": {
                            **extra,
                            "metadata": {"phone_number_id": PNID},
                            "messages": messages,
                            "message_echoes": messages,
                            "statuses": statuses,
                        },
                    }
                ],
            }
        ],
    },
    st.sampled_from(["messages", "smb_message_echoes"]),
    st.dictionaries(KEYS, JSON, max_size=2),
    st.lists(WA_MESSAGE, max_size=2),
    st.lists(WA_STATUS, max_size=2),
)
META_EVENT = item({"sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": 1767228000312})


def meta_payload(obj: str) -> st.SearchStrategy[Any]:
    return st.builds(
        lambda key, events: {
            "object": obj,
            "entry": [
                {
                    "id": PAGE,
                    key: [{"field": "messages", "value": e} for e in events] if key == "changes" else events,
                }
            ],
        },
        st.sampled_from(["messaging", "standby", "changes"]),
        st.lists(META_EVENT, max_size=2),
    )


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node's path in a JSON document, the root excluded."""
    out = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out.append((*prefix, key))
        out.extend(paths(child, (*prefix, key)))
    return out


DELETE = object()


def corrupt(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    """A copy of `document` with the node at `path` replaced by `value` (or deleted)."""
    document = copy.deepcopy(document)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = copy.deepcopy(value)
    return document


@st.composite
def mutated_fixture(draw: st.DrawFn, channel: str) -> Any:
    """A real fixture with a few nodes, picked uniformly, replaced by random JSON or deleted."""
    document = fixture(channel, draw(st.sampled_from(fixture_names(channel))))
    for _ in range(draw(st.integers(1, 3))):
        candidates = paths(document)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        document = corrupt(document, path, DELETE if draw(st.integers(0, 9)) == 0 else draw(JSON))
    return document


def assert_well_formed(batch: ParsedBatch) -> None:
    assert not any(INTERNAL_PROBLEM in problem for problem in batch.problems), batch.problems
    assert all(isinstance(p, str) for p in batch.problems + batch.ignored)
    for message in batch.messages:
        assert isinstance(message.type, MessageType)
        assert message.external_id and isinstance(message.external_id, str)
        assert message.contact_external_id and isinstance(message.contact_external_id, str)
        assert isinstance(message.routing_id, str) and isinstance(message.text, str)
        assert isinstance(message.contact_name, str)
        assert message.reply_to_external_id is None or isinstance(message.reply_to_external_id, str)
        assert message.echo_app_id is None or isinstance(message.echo_app_id, str)
        assert message.timestamp.tzinfo is not None
        assert isinstance(message.payload, dict) and isinstance(message.raw, dict)
        json.dumps(message.payload)
    for status in batch.statuses:
        assert isinstance(status.status, DeliveryStatus)
        assert status.external_id is None or (status.external_id and isinstance(status.external_id, str))
        assert status.timestamp.tzinfo is not None
        assert status.error_code is None or isinstance(status.error_code, int)
        assert isinstance(status.error_title, str) and isinstance(status.error_message, str)
    for error in batch.errors:
        assert error.code is None or isinstance(error.code, int)


STRATEGIES = {
    "whatsapp": WA_PAYLOAD | mutated_fixture("whatsapp"),
    "messenger": meta_payload("page") | mutated_fixture("messenger"),
    "instagram": meta_payload("instagram") | mutated_fixture("instagram"),
    "api": st.dictionaries(
        st.sampled_from(["contact", "text", "name", "client_message_id"]) | KEYS, JSON, max_size=5
    ),
}


@pytest.mark.parametrize("kind", sorted(ADAPTERS))
def test_parsing_random_shapes_never_raises_and_stays_well_typed(kind: str) -> None:
    adapter = get_adapter(kind)

    @FUZZ
    @given(payload=STRATEGIES[kind] | JSON)
    def check(payload: Any) -> None:
        assert_well_formed(adapter.parse(payload))

    check()


# Values of every wrong type a field could hold.
EVIL_VALUES = [
    DELETE,
    None,
    True,
    0,
    -1,
    2**80,
    1.5e308,
    "",
    "x",
    "9" * 30,
    [],
    [None],
    ["x"],
    {},
    {"x": [1]},
]


@pytest.mark.parametrize("channel", ["whatsapp", "messenger", "instagram"])
def test_every_single_node_corruption_of_every_fixture_is_handled(channel: str) -> None:
    adapter = get_adapter(channel)
    for name in fixture_names(channel):
        document = fixture(channel, name)
        for path in paths(document):
            for value in EVIL_VALUES:
                batch = adapter.parse(corrupt(document, path, value))
                try:
                    assert_well_formed(batch)
                except AssertionError as exc:
                    raise AssertionError(f"{name} {path} = {value!r}: {exc}") from exc
