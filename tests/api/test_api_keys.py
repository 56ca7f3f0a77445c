"""api-keys/: listing, creating (shown once), revoking; hashes only at rest."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from businesses.models import APIKey

LIST = "/api/v1/api-keys/"


def _client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def test_the_list_shows_metadata_and_never_a_secret(alice, bob):
    alice.client().get("/api/v1/auth/check/")  # sets last_used_at

    response = alice.client().get(LIST)

    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 1
    key = results[0]
    assert set(key) == {
        "id",
        "name",
        "prefix",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "is_active",
    }
    assert key["is_active"] is True
    assert key["last_used_at"] is not None
    secret = alice.raw_key.partition(".")[2]
    assert secret not in response.content.decode()
    assert APIKey.objects.get(business=alice.business).hashed_key not in response.content.decode()


def test_a_created_key_is_shown_once_and_works(alice):
    client = alice.client()

    response = client.post(LIST, {"name": "CI deploys"}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    raw_key = body["key"]
    assert raw_key.startswith(f"icmp_{body['prefix']}.")
    assert body["is_active"] is True
    assert _client(raw_key).get("/api/v1/auth/check/").json()["business"] == str(alice.business.pk)
    detail = client.get(f"{LIST}{body['id']}/")
    listing = client.get(LIST)
    assert "key" not in detail.json()
    for response in (detail, listing):
        assert raw_key.partition(".")[2] not in response.content.decode()


def test_no_column_of_a_key_holds_its_secret(alice):
    raw_key = alice.client().post(LIST, {"name": "stored"}, format="json").json()["key"]
    secret = raw_key.partition(".")[2]

    api_key = APIKey.objects.get(name="stored")
    values = [str(getattr(api_key, f.attname)) for f in APIKey._meta.concrete_fields]

    assert values
    assert not any(secret in value for value in values)
    assert not any(raw_key in value for value in values)


def test_a_key_can_be_created_with_an_expiry(alice):
    expires = (timezone.now() + timedelta(days=30)).replace(microsecond=0)

    response = alice.client().post(LIST, {"name": "temp", "expires_at": expires.isoformat()}, format="json")

    assert response.status_code == 201
    assert APIKey.objects.get(name="temp").expires_at == expires


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "past", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "bad date", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "mine", "prefix": "abc"}, "prefix"),
        ({"name": "mine", "hashed_key": "0" * 64}, "hashed_key"),
        ({"name": "mine", "business": "x"}, "business"),
    ],
)
def test_an_invalid_key_request_answers_400_and_creates_nothing(alice, body, field):
    response = alice.client().post(LIST, body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert APIKey.objects.filter(business=alice.business).count() == 1


def test_revoke_keeps_the_row_and_the_key_stops_working(alice):
    client = alice.client()
    created = client.post(LIST, {"name": "to revoke"}, format="json").json()

    response = client.post(f"{LIST}{created['id']}/revoke/")

    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None
    assert response.json()["is_active"] is False
    assert APIKey.objects.filter(pk=created["id"], revoked_at__isnull=False).exists()
    revoked = _client(created["key"]).get("/api/v1/agents/")
    assert revoked.status_code == 401
    assert revoked.json()["error"]["code"] == "authentication_failed"
    # Revoking again changes nothing.
    again = client.post(f"{LIST}{created['id']}/revoke/")
    assert again.json()["revoked_at"] == response.json()["revoked_at"]


def test_delete_revokes_and_keeps_the_row_for_audit(alice):
    client = alice.client()
    created = client.post(LIST, {"name": "to delete"}, format="json").json()

    response = client.delete(f"{LIST}{created['id']}/")

    assert response.status_code == 204
    assert APIKey.objects.get(pk=created["id"]).revoked_at is not None
    assert _client(created["key"]).get("/api/v1/auth/check/").status_code == 401
    assert client.get(f"{LIST}{created['id']}/").json()["is_active"] is False


def test_a_key_may_revoke_itself(alice):
    own = APIKey.objects.get(business=alice.business)
    client = alice.client()

    assert client.post(f"{LIST}{own.pk}/revoke/").status_code == 200
    assert client.get(LIST).status_code == 401


def test_another_tenants_key_answers_404_and_stays_active(alice, bob):
    bobs_key = APIKey.objects.get(business=bob.business)
    client = alice.client()

    for response in (
        client.get(f"{LIST}{bobs_key.pk}/"),
        client.post(f"{LIST}{bobs_key.pk}/revoke/"),
        client.delete(f"{LIST}{bobs_key.pk}/"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    bobs_key.refresh_from_db()
    assert bobs_key.revoked_at is None
    assert bob.client().get("/api/v1/auth/check/").status_code == 200
    assert str(bobs_key.pk) not in client.get(LIST).content.decode()


def test_a_key_created_by_a_session_records_its_creator(alice):
    client = APIClient()
    client.login(username="alice@example.com", password="pw-alice@example.com")

    response = client.post(LIST, {"name": "from the dashboard"}, format="json")

    assert response.status_code == 201
    assert APIKey.objects.get(pk=response.json()["id"]).created_by == alice.owner
