"""The webhook doors: handshake, signatures, bad bodies, routing and the per-account URL."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from channels_app.models import ChannelKind, WebhookEvent, WebhookEventStatus
from conversations.models import Contact, Conversation, Message
from tests.channels import fixture, fixture_bytes
from tests.channels.webhook_helpers import (
    PAGE,
    PNID,
    VERIFY_TOKEN,
    last_event,
    make_account,
    post_bytes,
    post_fixture,
    post_json,
    sign,
    url,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("meta_app")]


def handshake(path: str, **params: str):
    query = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY_TOKEN}
    query.update(params)
    return Client().get(path, {k: v for k, v in query.items() if v is not None})


# Handshake


@pytest.mark.parametrize("channel", ["whatsapp", "messenger", "instagram"])
def test_the_handshake_echoes_the_challenge_as_plain_text(channel):
    response = handshake(url(channel))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain"
    assert response.content == b"1158201444"


def test_the_challenge_is_echoed_byte_for_byte_even_when_it_is_not_a_number():
    response = handshake(url("whatsapp"), **{"hub.challenge": "a1-B2_c3.d4~ é"})

    assert response.content == "a1-B2_c3.d4~ é".encode()


@pytest.mark.parametrize(
    "params",
    [
        {"hub.verify_token": "wrong-token"},
        {"hub.verify_token": None},
        {"hub.verify_token": VERIFY_TOKEN + "x"},
        {"hub.mode": "unsubscribe"},
        {"hub.mode": None},
    ],
)
def test_a_wrong_token_or_mode_fails_the_handshake(params):
    response = handshake(url("messenger"), **params)

    assert response.status_code == 403
    assert b"1158201444" not in response.content


def test_no_configured_verify_token_fails_every_handshake(settings):
    settings.META_VERIFY_TOKEN = ""

    assert handshake(url("whatsapp"), **{"hub.verify_token": ""}).status_code == 403
    assert handshake(url("whatsapp"), **{"hub.verify_token": None}).status_code == 403


def test_the_per_account_url_uses_the_accounts_own_verify_token(alice):
    account = make_account(alice.business, ChannelKind.WHATSAPP, "555000", verify_token="own-token")

    assert handshake(url("whatsapp", account), **{"hub.verify_token": "own-token"}).status_code == 200
    assert handshake(url("whatsapp", account)).status_code == 403  # the global token is not its token


def test_the_per_account_url_falls_back_to_the_global_verify_token(alice):
    account = make_account(alice.business, ChannelKind.WHATSAPP, "555000")

    response = handshake(url("whatsapp", account))

    assert (response.status_code, response.content) == (200, b"1158201444")


def test_the_per_account_url_of_an_unknown_or_other_kind_account_fails_the_handshake(alice):
    assert handshake("/webhooks/whatsapp/0192d3a4-0000-7000-8000-000000000000/").status_code == 403
    # Alice's account is a WhatsApp number, not a Page.
    assert handshake(url("messenger", alice.channel)).status_code == 403


def test_other_methods_are_not_allowed():
    client = Client()

    assert client.put(url("whatsapp"), data=b"{}", content_type="application/json").status_code == 405
    assert client.delete(url("whatsapp")).status_code == 405
    assert client.patch(url("instagram"), data=b"{}", content_type="application/json").status_code == 405


def test_an_unknown_channel_is_404():
    assert (
        Client().post("/webhooks/telegram/", data=b"{}", content_type="application/json").status_code == 404
    )


# Signatures


def test_a_post_needs_no_csrf_token(accounts):
    response = post_fixture("whatsapp", "text", client=Client(enforce_csrf_checks=True))

    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": ""},
        {"X-Hub-Signature-256": "sha256="},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": sign(b"something else")},
        {"X-Hub-Signature-256": sign(fixture_bytes("whatsapp", "text"), secret="attacker")},
        # The legacy SHA-1 header alone, correctly computed, is not accepted.
        {"X-Hub-Signature": sign(fixture_bytes("whatsapp", "text"), algorithm="sha1")},
        {"X-Hub-Signature-256": sign(fixture_bytes("whatsapp", "text"), algorithm="sha1")},
    ],
    ids=[
        "missing",
        "empty",
        "no-digest",
        "zeros",
        "other-body",
        "other-secret",
        "sha1-header",
        "sha1-in-256",
    ],
)
def test_forged_missing_and_sha1_signatures_are_403_and_store_nothing(accounts, headers):
    response = post_fixture("whatsapp", "text", headers=headers)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not WebhookEvent.objects.exists()
    assert not Message.objects.filter(channel_account=accounts["whatsapp"]).exists()
    assert not Contact.objects.filter(channel_account=accounts["whatsapp"]).exists()


def test_a_tampered_body_with_the_original_signature_is_rejected(accounts):
    body = fixture_bytes("messenger", "text")
    tampered = body.replace(b"Curitiba", b"Curitibb")

    response = post_bytes("messenger", tampered, signature=sign(body))

    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


def test_reserialized_json_does_not_verify_against_metas_escaped_bytes(accounts):
    body = fixture_bytes("whatsapp", "text")
    reserialized = json.dumps(json.loads(body), ensure_ascii=False).encode()

    assert post_bytes("whatsapp", reserialized, signature=sign(body)).status_code == 403
    assert post_bytes("whatsapp", body, signature=sign(body)).status_code == 200


def test_without_a_configured_app_secret_nothing_can_be_verified(settings, accounts):
    settings.META_APP_SECRET = ""
    body = fixture_bytes("whatsapp", "text")

    assert post_bytes("whatsapp", body, signature=sign(body, secret="")).status_code == 403
    assert not WebhookEvent.objects.exists()


# Bad bodies


@pytest.mark.parametrize(
    "body",
    [
        b'{"object": "whatsapp_business_account", "entry": [',
        b"",
        b"not json",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"\xff\xfe{}",
        '{"a": "é"}'.encode("latin-1"),
        b"[" * 100_000 + b"]" * 100_000,
        # Parseable by Python, yet deeper than any code that recurses over it should face.
        b'{"object": "whatsapp_business_account", "entry": ' + b"[" * 65 + b"]" * 65 + b"}",
    ],
    ids=[
        "truncated",
        "empty",
        "text",
        "nan",
        "infinity",
        "utf16-bom",
        "latin1",
        "deep",
        "nested-65",
    ],
)
def test_a_signed_body_that_is_not_utf8_json_is_400_and_stores_nothing(accounts, body):
    response = post_bytes("whatsapp", body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("payload", [[], 5, "x", None, {}, {"object": "page", "entry": []}])
def test_valid_json_of_the_wrong_shape_is_kept_and_answered_200(accounts, payload):
    response = post_json("whatsapp", payload)

    assert response.status_code == 200
    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert event.body == json.dumps(payload)
    assert not Message.objects.filter(channel_account=accounts["whatsapp"]).exists()


# Routing


def test_an_unknown_account_is_200_and_the_event_is_kept_unrouted(db):
    response = post_fixture("whatsapp", "text")

    assert response.status_code == 200
    event = last_event()
    assert event.status == WebhookEventStatus.UNROUTED
    assert not event.parts.exists()  # no business sees an unrouted body
    assert event.body == fixture_bytes("whatsapp", "text").decode()
    assert PNID in event.error
    assert not Message.objects.filter(external_id__startswith="wamid.HBg").exists()


def test_an_inactive_account_is_treated_as_unknown(alice):
    make_account(alice.business, ChannelKind.MESSENGER, PAGE, is_active=False)

    assert post_fixture("messenger", "text").status_code == 200

    assert last_event().status == WebhookEventStatus.UNROUTED
    assert not Message.objects.filter(external_id="m_AbC1dEf2GhI3jKl4MnO5pQ").exists()


def test_a_routed_event_gives_its_business_a_part_naming_the_account(alice, accounts):
    post_fixture("instagram", "text")

    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert event.processed_at is not None
    part = event.parts.get()
    assert (part.business, part.channel_account) == (alice.business, accounts["instagram"])
    assert event.attempts == 1


def test_a_whatsapp_account_does_not_receive_messenger_events_with_the_same_id(alice):
    make_account(alice.business, ChannelKind.WHATSAPP, PAGE)

    post_fixture("messenger", "text")

    assert last_event().status == WebhookEventStatus.UNROUTED


# The per-account URL


def test_the_per_account_url_verifies_with_the_accounts_own_secret(alice):
    account = make_account(alice.business, ChannelKind.WHATSAPP, PNID, app_secret="alice-own-secret")

    assert post_fixture("whatsapp", "text", account=account).status_code == 403  # global secret
    assert not WebhookEvent.objects.exists()
    response = post_fixture("whatsapp", "text", account=account, secret="alice-own-secret")

    assert response.status_code == 200
    event = last_event()
    assert (event.status, event.received_for) == (WebhookEventStatus.PROCESSED, account)
    assert event.parts.get().channel_account == account
    assert Message.objects.filter(channel_account=account, external_id__startswith="wamid.HBg").count() == 1


def test_the_per_account_url_falls_back_to_the_global_secret(alice):
    account = make_account(alice.business, ChannelKind.MESSENGER, PAGE)

    assert post_fixture("messenger", "text", account=account).status_code == 200
    assert Message.objects.filter(channel_account=account).count() == 1


def test_an_accounts_own_secret_cannot_inject_messages_for_another_account(alice, bob):
    own = make_account(alice.business, ChannelKind.WHATSAPP, PNID, app_secret="alice-own-secret")
    victim = make_account(bob.business, ChannelKind.WHATSAPP, "106540352242999")
    # whatsapp/batched.json carries messages for both numbers.

    response = post_fixture("whatsapp", "batched", account=own, secret="alice-own-secret")

    assert response.status_code == 200
    assert Message.objects.filter(channel_account=own).count() == 3
    assert not Message.objects.filter(channel_account=victim).exists()
    assert not Contact.objects.filter(channel_account=victim).exists()
    event = last_event()
    assert event.status == WebhookEventStatus.PROCESSED
    assert "another account" in event.error


def test_a_per_account_payload_for_another_account_only_is_ignored(alice, bob):
    own = make_account(alice.business, ChannelKind.MESSENGER, "999000", app_secret="alice-own-secret")
    victim = make_account(bob.business, ChannelKind.MESSENGER, PAGE)

    assert post_fixture("messenger", "text", account=own, secret="alice-own-secret").status_code == 200

    assert not Message.objects.filter(channel_account=victim).exists()
    assert not Conversation.objects.filter(channel_account=victim).exists()


def test_an_unknown_account_id_on_the_per_account_url_is_403(db):
    body = fixture_bytes("whatsapp", "text")

    response = Client().post(
        "/webhooks/whatsapp/0192d3a4-0000-7000-8000-000000000000/",
        data=body,
        content_type="application/json",
        headers={"X-Hub-Signature-256": sign(body)},
    )

    assert response.status_code == 403
    assert not WebhookEvent.objects.exists()


def test_an_inactive_account_on_its_own_url_keeps_the_event_unrouted(alice):
    account = make_account(alice.business, ChannelKind.WHATSAPP, PNID, app_secret="own", is_active=False)

    assert post_fixture("whatsapp", "text", account=account, secret="own").status_code == 200

    event = last_event()
    assert event.status == WebhookEventStatus.UNROUTED
    assert event.received_for == account
    assert not Message.objects.filter(channel_account=account).exists()


def test_the_response_is_fast_and_does_no_outbound_http(accounts, fake_graph):
    assert post_fixture("whatsapp", "text").status_code == 200
    assert post_fixture("messenger", "echo_human").status_code == 200

    assert fake_graph.requests == []


def test_the_stored_body_is_the_exact_text_meta_sent(accounts):
    body = fixture_bytes("whatsapp", "text")

    post_bytes("whatsapp", body)

    assert last_event().body.encode() == body
    assert json.loads(last_event().body) == fixture("whatsapp", "text")
