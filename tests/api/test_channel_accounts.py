"""channel-accounts/: CRUD, write-only secrets, platform-wide unique ids, roles and tenancy."""

from __future__ import annotations

import logging

import pytest
from rest_framework.test import APIClient

from businesses.models import Agent
from channels_app.models import ChannelAccount, ChannelKind

URL = "/api/v1/channel-accounts/"
TOKEN = "EAAG-brand-new-token-5f1c9a"
APP_SECRET = "fresh-app-secret-8d2e"
VERIFY_TOKEN = "fresh-verify-token-77ab"


def detail(account) -> str:
    return f"{URL}{account.pk}/"


def assert_no_secrets(response, *secrets: str) -> None:
    for secret in secrets:
        assert secret.encode() not in response.content, f"secret leaked: {secret[:6]}…"
    for name in ("access_token", "app_secret", "verify_token"):
        assert f'"{name}"'.encode() not in response.content


def fixture_secrets(tenant) -> tuple[str, str]:
    return tenant.channel.access_token, tenant.channel.app_secret


def session_client(email: str, password: str) -> APIClient:
    client = APIClient()
    assert client.login(username=email, password=password)
    return client


@pytest.fixture(autouse=True)
def meta(fake_graph, alice):
    """Meta's view: TOKEN controls the numbers and the Page these tests connect (Alice's and Bob's too)."""
    for external_id in ("3300112233", alice.channel.external_id, "2077104511"):
        fake_graph.owns(TOKEN, "whatsapp", external_id)
    fake_graph.owns(TOKEN, "messenger", alice.channel.external_id)
    return fake_graph


def whatsapp_body(**overrides) -> dict:
    return {
        "kind": "whatsapp",
        "external_id": "3300112233",
        "name": "Second number",
        "access_token": TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        **overrides,
    }


# --- reading ----------------------------------------------------------------------


def test_list_shows_the_business_accounts_with_secret_flags_but_never_the_secrets(alice, bob):
    response = alice.client().get(URL)

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [str(alice.channel.pk)]
    row = rows[0]
    assert row["kind"] == "whatsapp"
    assert row["external_id"] == alice.channel.external_id
    assert row["name"] == "Alice's Bakery WhatsApp"
    assert row["is_active"] is True
    assert row["needs_reauth"] is False
    assert row["agent"] is None
    assert row["has_access_token"] is True
    assert row["has_app_secret"] is True
    assert row["has_verify_token"] is False
    assert "created_at" in row
    assert_no_secrets(response, *fixture_secrets(alice), *fixture_secrets(bob))


def test_detail_never_contains_the_secrets(alice):
    response = alice.client().get(detail(alice.channel))

    assert response.status_code == 200
    assert response.json()["id"] == str(alice.channel.pk)
    assert_no_secrets(response, *fixture_secrets(alice))


def test_the_kind_filter_narrows_the_list_and_rejects_unknown_kinds(alice):
    client = alice.client()
    client.post(URL, {"kind": "api", "name": "Website chat"}, format="json")

    api_only = client.get(URL, {"kind": "api"}).json()["results"]
    assert [row["kind"] for row in api_only] == ["api"]
    bad = client.get(URL, {"kind": "sms"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "validation_error"
    assert "kind" in bad.json()["error"]["details"]


# --- creating ---------------------------------------------------------------------


def test_create_stores_the_secrets_and_answers_without_them(alice):
    response = alice.client().post(URL, whatsapp_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "whatsapp"
    assert body["external_id"] == "3300112233"
    assert body["has_access_token"] is body["has_app_secret"] is body["has_verify_token"] is True
    assert_no_secrets(response, TOKEN, APP_SECRET, VERIFY_TOKEN)
    account = ChannelAccount.objects.get(pk=body["id"])
    assert account.business == alice.business
    assert (account.access_token, account.app_secret, account.verify_token) == (
        TOKEN,
        APP_SECRET,
        VERIFY_TOKEN,
    )


def test_an_api_account_gets_a_generated_external_id_when_none_is_given(alice):
    client = alice.client()

    first = client.post(URL, {"kind": "api", "name": "Website chat"}, format="json")
    second = client.post(URL, {"kind": "api", "name": "Kiosk"}, format="json")

    assert first.status_code == second.status_code == 201
    assert first.json()["external_id"]
    assert first.json()["external_id"] != second.json()["external_id"]
    assert first.json()["has_access_token"] is False


@pytest.mark.parametrize("kind", ["whatsapp", "messenger", "instagram"])
def test_a_meta_account_without_external_id_is_rejected(alice, kind):
    body = whatsapp_body(kind=kind)
    del body["external_id"]

    response = alice.client().post(URL, body, format="json")

    assert response.status_code == 400
    assert "external_id" in response.json()["error"]["details"]
    assert ChannelAccount.objects.filter(business=alice.business).count() == 1


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "sms", "external_id": "1", "name": "x"},
        {"kind": "whatsapp", "external_id": "has spaces 1", "name": "x"},
        {"kind": "whatsapp", "external_id": "1" * 65, "name": "x"},
        {"kind": "whatsapp", "external_id": "44", "name": ""},
        {"kind": "whatsapp", "external_id": "44"},
        {"kind": "whatsapp", "external_id": "44", "name": "x", "is_active": "perhaps"},
    ],
)
def test_invalid_bodies_answer_400_and_create_nothing(alice, body):
    response = alice.client().post(URL, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in ("validation_error", "invalid", "required")
    assert ChannelAccount.objects.filter(business=alice.business).count() == 1


@pytest.mark.parametrize(
    "field", ["id", "business", "needs_reauth", "has_access_token", "created_at", "colour"]
)
def test_unknown_and_read_only_fields_are_rejected(alice, field):
    response = alice.client().post(URL, whatsapp_body(**{field: "x"}), format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert ChannelAccount.objects.filter(business=alice.business).count() == 1


def test_an_external_id_connected_by_another_tenant_is_refused_without_naming_it(alice, bob):
    response = bob.client().post(URL, whatsapp_body(external_id=alice.channel.external_id), format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "already_connected"
    assert "already connected" in error["message"]
    assert "external_id" in error["details"]
    assert b"Alice" not in response.content
    assert str(alice.business.pk).encode() not in response.content
    assert str(alice.channel.pk).encode() not in response.content
    assert not ChannelAccount.objects.filter(business=bob.business, name="Second number").exists()


def test_the_same_external_id_is_refused_within_a_tenant_too(alice):
    response = alice.client().post(URL, whatsapp_body(external_id=alice.channel.external_id), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "already_connected"


def test_the_same_external_id_may_be_used_by_a_different_kind(alice):
    response = alice.client().post(
        URL, whatsapp_body(kind="messenger", external_id=alice.channel.external_id), format="json"
    )

    assert response.status_code == 201


def test_the_agent_must_belong_to_the_business(alice, bob):
    client = alice.client()
    own_agent = Agent.objects.get(business=alice.business, is_default=True)
    bobs_agent = Agent.objects.get(business=bob.business, is_default=True)

    refused = client.post(URL, whatsapp_body(agent=str(bobs_agent.pk)), format="json")
    accepted = client.post(URL, whatsapp_body(agent=str(own_agent.pk)), format="json")

    assert refused.status_code == 400
    assert "agent" in refused.json()["error"]["details"]
    assert accepted.status_code == 201
    assert accepted.json()["agent"] == str(own_agent.pk)


def test_secrets_never_reach_the_logs(alice, caplog):
    client = alice.client()
    with caplog.at_level(logging.DEBUG):
        created = client.post(URL, whatsapp_body(), format="json")
        client.patch(detail(alice.channel), {"access_token": TOKEN + "-2"}, format="json")
        client.post(URL, whatsapp_body(external_id=alice.channel.external_id), format="json")

    assert created.status_code == 201
    logged = caplog.text + "".join(repr(record.__dict__) for record in caplog.records)
    for secret in (TOKEN, APP_SECRET, VERIFY_TOKEN):
        assert secret not in logged


# --- updating ---------------------------------------------------------------------


def test_patch_changes_fields_and_a_new_token_clears_needs_reauth(alice):
    ChannelAccount.objects.filter(pk=alice.channel.pk).update(needs_reauth=True)

    response = alice.client().patch(
        detail(alice.channel), {"name": "Main line", "access_token": TOKEN, "is_active": False}, format="json"
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["name"] == "Main line"
    assert body["is_active"] is False
    assert body["needs_reauth"] is False
    assert_no_secrets(response, TOKEN, *fixture_secrets(alice))
    alice.channel.refresh_from_db()
    assert alice.channel.access_token == TOKEN
    assert alice.channel.app_secret == f"app-secret-{alice.channel.external_id}"


def test_an_empty_secret_clears_it(alice):
    response = alice.client().patch(detail(alice.channel), {"app_secret": ""}, format="json")

    assert response.status_code == 200
    assert response.json()["has_app_secret"] is False
    alice.channel.refresh_from_db()
    assert alice.channel.app_secret == ""


def test_kind_cannot_change_after_creation(alice):
    response = alice.client().patch(detail(alice.channel), {"kind": "messenger"}, format="json")

    assert response.status_code == 400
    assert "kind" in response.json()["error"]["details"]
    alice.channel.refresh_from_db()
    assert alice.channel.kind == ChannelKind.WHATSAPP


def test_changing_to_an_external_id_already_connected_is_refused(alice, bob, meta):
    meta.owns(alice.channel.access_token, "whatsapp", bob.channel.external_id)  # both may act for it
    response = alice.client().patch(
        detail(alice.channel), {"external_id": bob.channel.external_id, "name": "Renamed"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "already_connected"
    alice.channel.refresh_from_db()
    assert alice.channel.external_id == "1065403522"
    assert alice.channel.name == "Alice's Bakery WhatsApp"


def test_needs_reauth_is_read_only(alice):
    response = alice.client().patch(detail(alice.channel), {"needs_reauth": True}, format="json")

    assert response.status_code == 400
    alice.channel.refresh_from_db()
    assert alice.channel.needs_reauth is False


def test_put_is_not_offered(alice):
    response = alice.client().put(detail(alice.channel), whatsapp_body(), format="json")

    assert response.status_code == 405


# --- deleting ---------------------------------------------------------------------


def test_an_account_without_customers_can_be_deleted(alice):
    client = alice.client()
    created = client.post(URL, {"kind": "api", "name": "Temporary"}, format="json").json()

    response = client.delete(f"{URL}{created['id']}/")

    assert response.status_code == 204
    assert not ChannelAccount.objects.filter(pk=created["id"]).exists()


def test_an_account_with_conversations_is_not_deleted(alice):
    response = alice.client().delete(detail(alice.channel))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "in_use"
    assert ChannelAccount.objects.filter(pk=alice.channel.pk).exists()
    assert alice.conversation.__class__.objects.filter(pk=alice.conversation.pk).exists()


# --- roles ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "password", "fixture"),
    [
        ("victor@example.com", "pw-victor", "alice_viewer"),
        ("eve@example.com", "pw-eve", "alice_editor"),
    ],
)
def test_viewers_and_editors_read_but_cannot_change_channel_accounts(
    alice, request, email, password, fixture
):
    request.getfixturevalue(fixture)
    client = session_client(email, password)

    listing = client.get(URL)
    created = client.post(URL, whatsapp_body(), format="json")
    patched = client.patch(detail(alice.channel), {"name": "Nope"}, format="json")
    deleted = client.delete(detail(alice.channel))

    assert listing.status_code == 200
    assert_no_secrets(listing, *fixture_secrets(alice))
    assert created.status_code == patched.status_code == deleted.status_code == 403
    assert ChannelAccount.objects.filter(business=alice.business).count() == 1
    alice.channel.refresh_from_db()
    assert alice.channel.name == "Alice's Bakery WhatsApp"


# --- tenancy ----------------------------------------------------------------------


def test_bob_cannot_reach_alices_account_by_any_method(alice, bob):
    client = bob.client()
    url = detail(alice.channel)
    before = ChannelAccount.objects.filter(pk=alice.channel.pk).values().get()

    responses = [
        client.get(url),
        client.patch(url, {"name": "hijacked", "access_token": "stolen"}, format="json"),
        client.delete(url),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert all(r.json()["error"]["code"] == "not_found" for r in responses)
    assert ChannelAccount.objects.filter(pk=alice.channel.pk).values().get() == before


def test_bobs_list_never_contains_alices_accounts(alice, bob):
    response = bob.client().get(URL)

    assert [row["id"] for row in response.json()["results"]] == [str(bob.channel.pk)]
    assert str(alice.channel.pk).encode() not in response.content


def test_a_race_on_the_same_external_id_still_answers_already_connected(alice, bob, monkeypatch):
    # Two requests can both pass the pre-check; the database constraint decides.
    from channels_app import services

    real = services.channel_account_external_id_taken
    calls = []

    def passes_the_first_check(**kwargs):
        calls.append(kwargs)
        return False if len(calls) == 1 else real(**kwargs)

    monkeypatch.setattr(services, "channel_account_external_id_taken", passes_the_first_check)

    response = bob.client().post(URL, whatsapp_body(external_id=alice.channel.external_id), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "already_connected"
    assert len(calls) == 2
    assert ChannelAccount.objects.filter(external_id=alice.channel.external_id).count() == 1
