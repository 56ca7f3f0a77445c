"""business/ (the caller's business) and businesses/ (platform keys)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from businesses.models import Agent, AIControlSettings, Business, Membership
from stages.models import Stage

VALID_CONFIG = {
    "description": "Sourdough and pastries.",
    "language": "pt-BR",
    "opening_hours": {"mon": "08:00-18:00", "sun": "closed"},
    "contact": {"email": "hello@alice.example", "phone": "+351 21 000 0000"},
    "faq": [{"question": "Gluten free?", "answer": "Some loaves."}],
}


# --- business/ ---------------------------------------------------------------------


def test_a_business_key_reads_its_own_business(alice, bob):
    response = alice.client().get("/api/v1/business/")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(alice.business.pk)
    assert body["name"] == "Alice's Bakery"
    assert body["slug"] == alice.business.slug
    assert body["config"] == {}
    assert body["is_active"] is True
    assert set(body) == {"id", "name", "slug", "config", "is_active", "created_at"}


def test_patch_changes_name_and_config(alice):
    response = alice.client().patch(
        "/api/v1/business/", {"name": "Alice's Boulangerie", "config": VALID_CONFIG}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["config"] == VALID_CONFIG
    alice.business.refresh_from_db()
    assert alice.business.name == "Alice's Boulangerie"
    assert alice.business.config == VALID_CONFIG


def test_a_config_that_breaks_the_schema_answers_field_errors_and_changes_nothing(alice):
    bad = {"language": "Portuguese", "opening_hours": {"mon": "all day"}, "colour": "red"}

    response = alice.client().patch("/api/v1/business/", {"name": "Renamed", "config": bad}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    paths = {item["path"] for item in error["details"]["config"]}
    assert {"language", "opening_hours/mon", "(root)"} <= paths
    assert all(item["message"] for item in error["details"]["config"])
    alice.business.refresh_from_db()
    assert alice.business.name == "Alice's Bakery"
    assert alice.business.config == {}


@pytest.mark.parametrize(
    "body", [{"slug": "hijack"}, {"is_active": False}, {"id": "x"}, {"owner": 1}, {"business": "x"}]
)
def test_read_only_and_unknown_business_fields_are_refused(alice, body):
    response = alice.client().patch("/api/v1/business/", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert set(response.json()["error"]["details"]) == set(body)
    alice.business.refresh_from_db()
    assert alice.business.is_active is True
    assert alice.business.slug != "hijack"


def test_a_blank_name_is_refused(alice):
    response = alice.client().patch("/api/v1/business/", {"name": "  "}, format="json")

    assert response.status_code == 400
    assert "name" in response.json()["error"]["details"]


def test_platform_keys_have_no_caller_business(master_client, internal_client, db):
    assert master_client.get("/api/v1/business/").status_code == 403
    assert internal_client.get("/api/v1/business/").status_code == 403


# --- businesses/ (platform) --------------------------------------------------------------


def test_the_master_key_creates_a_business_with_everything_it_needs(master_client, db):
    response = master_client.post(
        "/api/v1/businesses/",
        {"name": "Carol's Café", "owner_email": "Carol@Example.com", "config": {"language": "en"}},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"id", "name", "slug", "owner_email", "api_key", "created_at"}
    assert body["name"] == "Carol's Café"
    assert body["owner_email"] == "carol@example.com"
    business = Business.objects.get(pk=body["id"])
    assert business.config == {"language": "en"}
    assert Membership.objects.filter(
        business=business, user__email="carol@example.com", role="owner"
    ).exists()
    assert AIControlSettings.objects.filter(business=business).exists()
    assert Agent.objects.filter(business=business, is_default=True).count() == 1
    assert Stage.objects.filter(business=business, is_initial=True).exists()
    # The returned key works, and it is the business's key.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {body['api_key']}")
    assert client.get("/api/v1/auth/check/").json()["business"] == body["id"]


def test_the_first_api_key_is_shown_only_at_creation(master_client, db):
    created = master_client.post(
        "/api/v1/businesses/", {"name": "Dave's Deli", "owner_email": "dave@example.com"}, format="json"
    ).json()

    detail = master_client.get(f"/api/v1/businesses/{created['id']}/")
    listing = master_client.get("/api/v1/businesses/")

    assert detail.status_code == 200
    assert "api_key" not in detail.json()
    assert created["api_key"] not in detail.content.decode()
    assert created["api_key"] not in listing.content.decode()


def test_a_chosen_slug_is_used_and_a_taken_one_is_refused(master_client, alice):
    ok = master_client.post(
        "/api/v1/businesses/", {"name": "X", "owner_email": "x@example.com", "slug": "x-shop"}, format="json"
    )
    taken = master_client.post(
        "/api/v1/businesses/", {"name": "Y", "owner_email": "y@example.com", "slug": "x-shop"}, format="json"
    )

    assert ok.status_code == 201
    assert ok.json()["slug"] == "x-shop"
    assert taken.status_code == 400
    assert "slug" in taken.json()["error"]["details"]
    assert not Business.objects.filter(name="Y").exists()
    assert not get_user_model().objects.filter(email="y@example.com").exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"owner_email": "z@example.com"}, "name"),
        ({"name": "Z"}, "owner_email"),
        ({"name": "Z", "owner_email": "not-an-email"}, "owner_email"),
        ({"name": "Z", "owner_email": "z@example.com", "config": {"nope": 1}}, "config"),
        ({"name": "Z", "owner_email": "z@example.com", "slug": "Not A Slug"}, "slug"),
        ({"name": "Z", "owner_email": "z@example.com", "api_key": "mine"}, "api_key"),
        ({"name": ["Z"], "owner_email": "z@example.com"}, "name"),
    ],
)
def test_an_invalid_create_answers_400_and_creates_nothing(master_client, db, body, field):
    response = master_client.post("/api/v1/businesses/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Business.objects.exists()
    assert not get_user_model().objects.filter(email="z@example.com").exists()


def test_the_internal_key_may_read_but_not_create_businesses(internal_client, alice):
    assert internal_client.get("/api/v1/businesses/").status_code == 200
    assert internal_client.get(f"/api/v1/businesses/{alice.business.pk}/").status_code == 200

    response = internal_client.post(
        "/api/v1/businesses/", {"name": "No", "owner_email": "no@example.com"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Business.objects.filter(name="No").exists()


def test_a_business_key_cannot_use_platform_routes(alice, bob):
    client = alice.client()

    assert client.get("/api/v1/businesses/").status_code == 403
    assert client.get(f"/api/v1/businesses/{alice.business.pk}/").status_code == 403
    assert (
        client.post(
            f"/api/v1/businesses/{bob.business.pk}/verify-owner/", {"email": "bob@example.com"}, format="json"
        ).status_code
        == 403
    )
    response = client.post(
        "/api/v1/businesses/", {"name": "No", "owner_email": "no@example.com"}, format="json"
    )
    assert response.status_code == 403
    assert not Business.objects.filter(name="No").exists()


def test_a_staff_session_cannot_use_platform_routes(alice):
    client = APIClient()
    client.login(username="alice@example.com", password="pw-alice@example.com")

    assert client.get("/api/v1/businesses/").status_code == 403


def test_the_list_is_cursor_paginated_and_filters_by_owner_email(master_client, alice, bob):
    everything = master_client.get("/api/v1/businesses/")
    first_page = master_client.get("/api/v1/businesses/?page_size=1")
    second_page = master_client.get(first_page.json()["next"])
    bobs = master_client.get("/api/v1/businesses/?owner_email=BOB@example.com")

    assert {b["id"] for b in everything.json()["results"]} == {str(alice.business.pk), str(bob.business.pk)}
    assert len(first_page.json()["results"]) == 1
    assert first_page.json()["results"] != second_page.json()["results"]
    assert [b["id"] for b in bobs.json()["results"]] == [str(bob.business.pk)]
    assert bobs.json()["results"][0]["owner_email"] == "bob@example.com"


def test_an_unknown_business_id_answers_404(master_client, db):
    response = master_client.get("/api/v1/businesses/0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert master_client.get("/api/v1/businesses/not-a-uuid/").status_code == 404


@pytest.mark.parametrize("client_name", ["master_client", "internal_client"])
def test_verify_owner_says_whether_an_email_owns_the_business(request, alice, bob, client_name):
    client = request.getfixturevalue(client_name)
    url = f"/api/v1/businesses/{alice.business.pk}/verify-owner/"

    assert client.post(url, {"email": "ALICE@example.com"}, format="json").json() == {"verified": True}
    assert client.post(url, {"email": "bob@example.com"}, format="json").json() == {"verified": False}


def test_verify_owner_ignores_non_owner_members(master_client, alice, alice_editor):
    url = f"/api/v1/businesses/{alice.business.pk}/verify-owner/"

    response = master_client.post(url, {"email": "eve@example.com"}, format="json")

    assert response.json() == {"verified": False}


def test_verify_owner_needs_an_email(master_client, alice):
    url = f"/api/v1/businesses/{alice.business.pk}/verify-owner/"

    assert master_client.post(url, {}, format="json").status_code == 400
    assert master_client.post(url, {"email": "nope"}, format="json").status_code == 400
    assert master_client.post(url, {"email": "a@b.co", "extra": 1}, format="json").status_code == 400
