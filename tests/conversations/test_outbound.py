"""The send path: stored first, claimed once, retried only when it can help."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from businesses.models import AIControlSettings
from channels_app.models import ChannelAccount, ChannelKind
from conversations.models import AIMode, Author, Conversation, Message, MessageStatus
from conversations.outbound import backoff_seconds, message_outbound_create, message_send
from conversations.staff_flags import conversation_flag_for_staff


@pytest.fixture
def open_window(alice):
    Conversation.objects.filter(pk=alice.conversation.pk).update(last_inbound_at=timezone.now())
    alice.conversation.refresh_from_db()
    return alice


def _queued(tenant, text="Your order ships today.", author=Author.AI, **kwargs) -> Message:
    return message_outbound_create(
        conversation=tenant.conversation, author=author, text=text, enqueue=False, **kwargs
    )


def test_a_reply_is_sent_once_with_metas_whatsapp_format(open_window, fake_graph):
    message = _queued(open_window)
    assert message_send(message_id=message.pk).status == MessageStatus.SENT
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.external_id.startswith("wamid.")
    request = fake_graph.last
    assert request.path == f"/v25.0/{open_window.channel.external_id}/messages"
    assert request.headers["Authorization"] == f"Bearer {open_window.channel.access_token}"
    assert request.body["messaging_product"] == "whatsapp"
    assert request.body["to"] == open_window.contact.external_id
    assert request.body["text"]["body"] == "Your order ships today."
    # Receipts name our id, so one that overtakes this response still finds the row.
    assert request.body["biz_opaque_callback_data"] == str(message.pk)

    # A redelivered task finds nothing to claim and sends nothing.
    assert message_send(message_id=message.pk).status == "not_claimed"
    assert len(fake_graph.requests) == 1


def test_quick_replies_become_whatsapp_buttons(open_window, fake_graph):
    message = _queued(open_window, text="Which one?", quick_replies=["Track order", "Cancel"])
    message_send(message_id=message.pk)
    body = fake_graph.last.body
    assert body["type"] == "interactive"
    titles = [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]]
    assert titles == ["Track order", "Cancel"]


def test_a_transient_error_is_retried_then_sent(open_window, fake_graph):
    message = _queued(open_window)
    fake_graph.fail(500, {"error": {"message": "boom", "code": 1}})
    outcome = message_send(message_id=message.pk)
    message.refresh_from_db()
    assert outcome.status == MessageStatus.QUEUED
    assert outcome.retry_in and outcome.retry_in > 0
    assert message.status == MessageStatus.QUEUED
    assert message.attempts == 1
    assert message_send(message_id=message.pk).status == MessageStatus.SENT
    message.refresh_from_db()
    assert message.status == MessageStatus.SENT
    assert message.error == ""
    assert len(fake_graph.requests) == 2


def test_a_split_reply_that_fails_part_way_resends_only_the_missing_parts(open_window, fake_graph):
    first, second, third = "a" * 4000, "b" * 4000, "c" * 100  # WhatsApp takes 4096 characters a message
    message = _queued(open_window, text=f"{first}\n\n{second}\n\n{third}")
    fake_graph.ok()
    fake_graph.fail(500, {"error": {"message": "boom", "code": 1}})

    assert message_send(message_id=message.pk).status == MessageStatus.QUEUED
    message.refresh_from_db()
    assert message.payload["sent_part_ids"] == ["wamid.1"]

    assert message_send(message_id=message.pk).status == MessageStatus.SENT
    bodies = [r.body["text"]["body"] for r in fake_graph.requests]
    # The first part once; the part that failed, again; then the rest.
    assert [body[0] for body in bodies] == ["a", "b", "b", "c"]
    message.refresh_from_db()
    assert message.external_id == "wamid.1"
    assert message.payload["part_ids"] == ["wamid.1", "wamid.3", "wamid.4"]


def test_a_split_messenger_reply_with_quick_replies_resends_only_the_missing_parts(alice, fake_graph):
    page = ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.MESSENGER, external_id="4400", name="Page", access_token="t"
    )
    contact = alice.contact.__class__.objects.create(
        business=alice.business, channel_account=page, external_id="psid"
    )
    conversation = Conversation.objects.create(
        business=alice.business, contact=contact, channel_account=page, last_inbound_at=timezone.now()
    )
    message = message_outbound_create(
        conversation=conversation,
        author=Author.AI,
        text=f"{'a' * 1990} {'b' * 50}",
        quick_replies=["Yes", "No"],
        enqueue=False,
    )
    fake_graph.ok()
    fake_graph.fail(503, {"error": {"message": "later", "code": 2}})

    assert message_send(message_id=message.pk).status == MessageStatus.QUEUED
    assert message_send(message_id=message.pk).status == MessageStatus.SENT

    sent = [r.body["message"] for r in fake_graph.requests]
    assert [m["text"][0] for m in sent] == ["a", "b", "b"]
    assert "quick_replies" in sent[-1] and "quick_replies" not in sent[0]


def test_whatsapp_rate_limit_is_transient(open_window, fake_graph):
    message = _queued(open_window)
    fake_graph.graph_error(130429, "Rate limit hit")
    assert message_send(message_id=message.pk).status == MessageStatus.QUEUED


def test_retries_stop_at_the_cap_and_the_conversation_is_flagged(open_window, fake_graph):
    message = _queued(open_window)
    Message.objects.filter(pk=message.pk).update(attempts=5)
    fake_graph.fail(503)
    assert message_send(message_id=message.pk).status == MessageStatus.FAILED
    conversation = Conversation.objects.get(pk=open_window.conversation.pk)
    assert conversation.needs_human


def test_a_permanent_error_fails_the_message_with_metas_code(open_window, fake_graph):
    message = _queued(open_window)
    fake_graph.graph_error(131026, "Message undeliverable")
    assert message_send(message_id=message.pk).status == MessageStatus.FAILED
    message.refresh_from_db()
    assert message.error_code == "131026"
    assert "undeliverable" in message.error.lower()
    conversation = Conversation.objects.get(pk=open_window.conversation.pk)
    assert conversation.needs_human
    assert "131026" in conversation.handoff_reason


def test_an_expired_token_marks_the_account_for_reauthorisation(open_window, fake_graph):
    message = _queued(open_window)
    fake_graph.graph_error(190, "Error validating access token", status=401)
    assert message_send(message_id=message.pk).status == MessageStatus.FAILED
    assert ChannelAccount.objects.get(pk=open_window.channel.pk).needs_reauth


def test_outside_the_24_hour_window_no_free_text_is_attempted(alice, fake_graph):
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        last_inbound_at=timezone.now() - timedelta(hours=25)
    )
    message = _queued(alice)
    assert message_send(message_id=message.pk).status == MessageStatus.FAILED
    message.refresh_from_db()
    assert message.error_code == "131047"
    assert fake_graph.requests == []


def test_outside_the_window_the_configured_template_is_sent_instead(alice, fake_graph):
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        last_inbound_at=timezone.now() - timedelta(hours=25)
    )
    AIControlSettings.objects.filter(business=alice.business).update(
        whatsapp_window_template="follow_up", whatsapp_window_template_language="pt_BR"
    )
    message = _queued(alice)
    assert message_send(message_id=message.pk).status == MessageStatus.SENT
    body = fake_graph.last.body
    assert body["type"] == "template"
    assert body["template"]["name"] == "follow_up"
    assert body["template"]["language"]["code"] == "pt_BR"


def test_an_ai_reply_made_obsolete_by_a_staff_takeover_is_not_sent(open_window, fake_graph):
    message = _queued(open_window)
    Conversation.objects.filter(pk=open_window.conversation.pk).update(ai_mode=AIMode.PAUSED)
    assert message_send(message_id=message.pk).status == MessageStatus.CANCELLED
    message.refresh_from_db()
    assert "paused" in message.error
    assert fake_graph.requests == []


def test_a_staff_reply_is_sent_even_when_the_ai_is_paused(open_window, fake_graph):
    Conversation.objects.filter(pk=open_window.conversation.pk).update(ai_mode=AIMode.PAUSED)
    message = _queued(open_window, author=Author.STAFF, text="Hi, Maria here")
    assert message_send(message_id=message.pk).status == MessageStatus.SENT


def test_messenger_staff_replies_use_the_human_agent_tag_after_24_hours(alice, fake_graph):
    page = ChannelAccount.objects.create(
        business=alice.business,
        kind=ChannelKind.MESSENGER,
        external_id="5550001",
        name="Page",
        access_token="page-token",
    )
    conversation = alice.conversation
    Conversation.objects.filter(pk=conversation.pk).update(
        channel_account=page, last_inbound_at=timezone.now() - timedelta(days=2)
    )
    conversation.refresh_from_db()
    staff = message_outbound_create(
        conversation=conversation, author=Author.STAFF, text="Sorry!", enqueue=False
    )
    assert message_send(message_id=staff.pk).status == MessageStatus.SENT
    body = fake_graph.last.body
    assert body["messaging_type"] == "MESSAGE_TAG"
    assert body["tag"] == "HUMAN_AGENT"

    ai = message_outbound_create(conversation=conversation, author=Author.AI, text="Hello", enqueue=False)
    assert message_send(message_id=ai.pk).status == MessageStatus.FAILED


def test_the_api_channel_sends_without_http(alice, fake_graph):
    api = ChannelAccount.objects.create(
        business=alice.business, kind=ChannelKind.API, external_id="site", name="Website"
    )
    Conversation.objects.filter(pk=alice.conversation.pk).update(channel_account=api)
    alice.conversation.refresh_from_db()
    message = _queued(alice)
    assert message_send(message_id=message.pk).status == MessageStatus.SENT
    assert fake_graph.requests == []


def test_backoff_grows_and_is_capped():
    delays = [backoff_seconds(n) for n in range(1, 12)]
    assert delays == sorted(delays)
    assert delays[-1] <= 300
    assert backoff_seconds(1, retry_after=30) == 30


def test_flagging_keeps_the_first_reason(alice):
    conversation_flag_for_staff(conversation_id=alice.conversation.pk, reason="first")
    conversation_flag_for_staff(conversation_id=alice.conversation.pk, reason="second", pause_ai=True)
    conversation = Conversation.objects.get(pk=alice.conversation.pk)
    assert conversation.handoff_reason == "first"
    assert conversation.ai_mode == AIMode.PAUSED


def test_a_turn_start_marks_read_with_a_typing_indicator(open_window, fake_graph):
    from conversations.outbound import channel_typing_indicate

    inbound = open_window.messages[0]
    channel_typing_indicate(conversation=open_window.conversation, last_message=inbound)
    body = fake_graph.last.body
    assert body == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": inbound.external_id,
        "typing_indicator": {"type": "text"},
    }


def test_a_failing_typing_indicator_is_logged_and_never_raises(open_window, fake_graph, caplog):
    from conversations.outbound import channel_typing_indicate

    fake_graph.fail(500)
    with caplog.at_level("INFO", logger="conversations.outbound"):
        channel_typing_indicate(conversation=open_window.conversation, last_message=open_window.messages[0])

    assert len(fake_graph.requests) == 1  # it was tried …
    [record] = [r for r in caplog.records if r.getMessage() == "typing indicator not shown"]
    assert record.conversation_id == str(open_window.conversation.pk)  # … and the failure said so


def test_the_typing_indicator_is_sent_without_holding_up_the_turn(open_window, fake_graph):
    import time

    from conversations.outbound import channel_typing_indicate_soon

    fake_graph.delay(2.0)  # Meta is slow to answer the read receipt
    started = time.monotonic()
    channel_typing_indicate_soon(conversation=open_window.conversation, last_message=open_window.messages[0])
    assert time.monotonic() - started < 0.5  # the turn goes on at once

    deadline = time.monotonic() + 10
    while not fake_graph.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake_graph.last.body["status"] == "read"


def test_a_receipt_for_the_parts_that_arrived_does_not_mark_a_half_sent_reply_sent(open_window, fake_graph):
    from tests.channels.webhook_helpers import post_json

    message = _queued(open_window, text=f"{'a' * 4000}\n\n{'b' * 100}")
    fake_graph.ok()
    fake_graph.fail(500, {"error": {"message": "boom", "code": 1}})
    assert message_send(message_id=message.pk).status == MessageStatus.QUEUED

    # Meta's receipt for part 1 names our message id (biz_opaque_callback_data).
    receipt = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "1555",
                                "phone_number_id": open_window.channel.external_id,
                            },
                            "statuses": [
                                {
                                    "id": "wamid.1",
                                    "status": "delivered",
                                    "timestamp": "1767229000",
                                    "biz_opaque_callback_data": str(message.pk),
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    with override_settings(META_APP_SECRET="test-app-secret-0123456789abcdef"):
        assert post_json("whatsapp", receipt).status_code == 200
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED

    assert message_send(message_id=message.pk).status == MessageStatus.SENT
    assert [r.body["text"]["body"][0] for r in fake_graph.requests] == ["a", "b", "b"]
    message.refresh_from_db()
    assert "parts_pending" not in message.payload
