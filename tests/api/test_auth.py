"""Authentication and auth/check/: API keys, platform keys, staff sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from businesses.models import APIKey
from businesses.services import api_key_create

CHECK = "/api/v1/auth/check/"


def _key_client(raw_key: str, scheme: str = "Api-Key") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {raw_key}")
    return client


def _assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "details" in body["error"]


@pytest.mark.parametrize("scheme", ["Api-Key", "Bearer", "api-key", "bearer"])
def test_a_business_key_is_accepted_with_either_scheme(alice, scheme):
    response = _key_client(alice.raw_key, scheme).get(CHECK)

    assert response.status_code == 200
    assert response.json() == {"kind": "business", "business": str(alice.business.pk), "role": None}


def test_the_master_key_checks_as_master(master_client):
    response = master_client.get(CHECK)

    assert response.status_code == 200
    assert response.json()["kind"] == "master"
    assert response.json()["business"] is None


def test_the_internal_key_checks_as_internal(internal_client):
    response = internal_client.get(CHECK)

    assert response.status_code == 200
    assert response.json()["kind"] == "internal"
    assert response.json()["business"] is None


def test_no_credentials_answer_401_with_a_challenge(anon_client, db):
    response = anon_client.get(CHECK)

    _assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Api-Key")


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key icmp_nosuchprefix.secret",
        "Api-Key not-a-key-at-all",
        "Bearer icmp_",
        "Api-Key icmp_abc.def ghi",
        "Api-Key ",
        "Bearer test-master-key-0123456789abcdeX",
    ],
)
def test_wrong_or_garbled_keys_answer_401_json(alice, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get(CHECK)

    _assert_error(response, 401, response.json()["error"]["code"])
    assert response.json()["error"]["code"] in {"authentication_failed", "not_authenticated"}
    assert "WWW-Authenticate" in response


def test_a_right_prefix_with_a_wrong_secret_answers_401(alice):
    prefix = APIKey.objects.filter(business=alice.business).get().prefix

    response = _key_client(f"icmp_{prefix}.wrong-secret").get(CHECK)

    _assert_error(response, 401, "authentication_failed")


def test_a_revoked_key_answers_401_everywhere(alice):
    client = alice.client()
    assert client.get("/api/v1/agents/").status_code == 200
    APIKey.objects.filter(business=alice.business).update(revoked_at=timezone.now())

    for path in (CHECK, "/api/v1/agents/", "/api/v1/business/"):
        _assert_error(client.get(path), 401, "authentication_failed")


def test_an_expired_key_answers_401(alice):
    api_key, raw_key = api_key_create(
        business=alice.business, name="short-lived", expires_at=timezone.now() + timedelta(hours=1)
    )
    assert _key_client(raw_key).get(CHECK).status_code == 200
    APIKey.objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    _assert_error(_key_client(raw_key).get("/api/v1/agents/"), 401, "authentication_failed")


def test_a_key_of_an_inactive_business_answers_401(alice):
    alice.business.is_active = False
    alice.business.save()

    _assert_error(alice.client().get(CHECK), 401, "authentication_failed")


def test_using_a_key_records_last_used_at(alice):
    api_key = APIKey.objects.get(business=alice.business)
    assert api_key.last_used_at is None

    alice.client().get(CHECK)

    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert timezone.now() - api_key.last_used_at < timedelta(minutes=1)


def test_a_member_session_acts_on_their_business(alice):
    client = APIClient()
    assert client.login(username="alice@example.com", password="pw-alice@example.com")

    response = client.get(CHECK)

    assert response.status_code == 200
    assert response.json() == {"kind": "business", "business": str(alice.business.pk), "role": "owner"}
    assert client.get("/api/v1/business/").json()["id"] == str(alice.business.pk)


def test_a_session_post_without_csrf_token_is_refused_and_writes_nothing(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice@example.com", password="pw-alice@example.com")

    response = client.post("/api/v1/agents/", {"name": "Sneaky"}, format="json")

    _assert_error(response, 403, "permission_denied")
    assert "CSRF" in response.json()["error"]["message"]
    assert not alice.business.agents.filter(name="Sneaky").exists()


def test_a_session_post_with_the_csrf_token_works(alice):
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="alice@example.com", password="pw-alice@example.com")
    # What a browser front end does: echo the csrftoken cookie in X-CSRFToken.
    token = get_random_string(32)
    client.cookies["csrftoken"] = token

    response = client.post("/api/v1/agents/", {"name": "Legit"}, format="json", HTTP_X_CSRFTOKEN=token)

    assert response.status_code == 201, response.content
    assert alice.business.agents.filter(name="Legit").exists()


def test_a_viewer_can_read_but_not_write(alice, alice_viewer):
    client = APIClient()
    client.login(username="victor@example.com", password="pw-victor")

    assert client.get("/api/v1/agents/").status_code == 200
    assert client.get(CHECK).json()["role"] == "viewer"
    _assert_error(client.post("/api/v1/agents/", {"name": "Nope"}, format="json"), 403, "permission_denied")
    _assert_error(
        client.patch("/api/v1/business/", {"name": "Nope"}, format="json"), 403, "permission_denied"
    )
    assert not alice.business.agents.filter(name="Nope").exists()


def test_an_editor_may_change_agents_but_not_keys_or_business(alice, alice_editor):
    client = APIClient()
    client.login(username="eve@example.com", password="pw-eve")

    assert client.post("/api/v1/agents/", {"name": "Eve's"}, format="json").status_code == 201
    _assert_error(client.post("/api/v1/api-keys/", {"name": "k"}, format="json"), 403, "permission_denied")
    _assert_error(client.patch("/api/v1/business/", {"name": "x"}, format="json"), 403, "permission_denied")
    assert APIKey.objects.filter(business=alice.business).count() == 1


def test_a_staff_user_without_membership_gets_403(alice, charlie):
    client = APIClient()
    client.login(username="charlie@example.com", password="pw-charlie")

    _assert_error(client.get("/api/v1/agents/"), 403, "permission_denied")
    _assert_error(client.get("/api/v1/business/"), 403, "permission_denied")
    assert client.get(CHECK).json()["business"] is None


def test_a_member_cannot_pick_another_business_by_header(alice, bob):
    client = APIClient()
    client.login(username="alice@example.com", password="pw-alice@example.com")

    response = client.get("/api/v1/agents/", HTTP_X_BUSINESS_ID=str(bob.business.pk))

    _assert_error(response, 403, "permission_denied")
