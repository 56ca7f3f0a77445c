"""agents/: CRUD, one default per business, unique names, ranges, tenancy."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from businesses.models import Agent

LIST = "/api/v1/agents/"


def _default(tenant) -> Agent:
    return Agent.objects.get(business=tenant.business, is_default=True)


def test_the_list_holds_only_the_callers_agents(alice, bob):
    response = alice.client().get(LIST)

    assert response.status_code == 200
    ids = {a["id"] for a in response.json()["results"]}
    assert ids == {str(_default(alice).pk)}


def test_create_returns_the_agent(alice):
    body = {
        "name": "Sales",
        "persona": "Cheerful baker.",
        "instructions": "Never promise delivery times.",
        "model": "gpt-4o",
        "temperature": 0.7,
        "max_tokens": 800,
    }

    response = alice.client().post(LIST, body, format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert {k: created[k] for k in body} == body
    assert created["is_default"] is False
    assert set(created) == {*body, "id", "is_default", "created_at", "updated_at"}
    agent = Agent.objects.get(pk=created["id"])
    assert agent.business == alice.business
    assert float(agent.temperature) == 0.7


def test_making_an_agent_default_unsets_the_previous_one(alice, bob):
    old_default = _default(alice)
    bobs_default = _default(bob)
    client = alice.client()

    created = client.post(LIST, {"name": "New default", "is_default": True}, format="json").json()

    assert created["is_default"] is True
    old_default.refresh_from_db()
    assert old_default.is_default is False
    # Switching back through PATCH does the same.
    response = client.patch(f"{LIST}{old_default.pk}/", {"is_default": True}, format="json")
    assert response.status_code == 200
    assert Agent.objects.get(pk=created["id"]).is_default is False
    assert Agent.objects.filter(business=alice.business, is_default=True).count() == 1
    bobs_default.refresh_from_db()
    assert bobs_default.is_default is True


def test_the_default_cannot_be_unset_only_replaced(alice):
    default = _default(alice)

    response = alice.client().patch(f"{LIST}{default.pk}/", {"is_default": False}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "default_agent_required"
    assert "is_default" in response.json()["error"]["details"]
    default.refresh_from_db()
    assert default.is_default is True


def test_the_first_agent_of_a_business_becomes_its_default(alice):
    Agent.objects.filter(business=alice.business).delete()

    response = alice.client().post(LIST, {"name": "Only one"}, format="json")

    assert response.json()["is_default"] is True


def test_a_duplicate_name_is_a_field_error_not_a_500(alice, bob):
    taken = _default(alice).name

    response = alice.client().post(LIST, {"name": taken}, format="json")
    other = alice.client().post(LIST, {"name": "Second"}, format="json").json()
    rename = alice.client().patch(f"{LIST}{other['id']}/", {"name": taken}, format="json")
    # Bob's business has an agent of the same name; names are unique per business only.
    bobs = bob.client().post(LIST, {"name": "Second"}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "duplicate"
    assert "name" in response.json()["error"]["details"]
    assert rename.status_code == 400
    assert "name" in rename.json()["error"]["details"]
    assert Agent.objects.get(pk=other["id"]).name == "Second"
    assert bobs.status_code == 201
    assert Agent.objects.filter(business=alice.business).count() == 2


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "T", "temperature": 2.5}, "temperature"),
        ({"name": "T", "temperature": -0.1}, "temperature"),
        ({"name": "T", "temperature": "hot"}, "temperature"),
        ({"name": "T", "temperature": 0.123}, "temperature"),
        ({"name": "T", "max_tokens": 0}, "max_tokens"),
        ({"name": "T", "max_tokens": 32001}, "max_tokens"),
        ({"name": "T", "max_tokens": "many"}, "max_tokens"),
        ({"name": "T", "is_default": "perhaps"}, "is_default"),
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"name": "x" * 121}, "name"),
        ({"persona": "no name"}, "name"),
        ({"name": "T", "id": "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"}, "id"),
        ({"name": "T", "business": "0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b"}, "business"),
        ({"name": "T", "colour": "blue"}, "colour"),
    ],
)
def test_invalid_agent_bodies_answer_400_and_write_nothing(alice, body, field):
    response = alice.client().post(LIST, body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.json()["error"]["details"]
    assert Agent.objects.filter(business=alice.business).count() == 1


def test_limits_at_the_edges_are_accepted(alice):
    response = alice.client().post(
        LIST, {"name": "Edge", "temperature": 2, "max_tokens": 32000}, format="json"
    )

    assert response.status_code == 201
    assert response.json()["max_tokens"] == 32000


def test_patch_changes_only_the_given_fields(alice):
    agent = _default(alice)

    response = alice.client().patch(f"{LIST}{agent.pk}/", {"persona": "Warm and brief."}, format="json")

    assert response.status_code == 200
    agent.refresh_from_db()
    assert agent.persona == "Warm and brief."
    assert agent.name == "Assistant"
    assert agent.is_default is True


def test_put_is_not_offered(alice):
    agent = _default(alice)

    response = alice.client().put(f"{LIST}{agent.pk}/", {"name": "Whole"}, format="json")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_delete_removes_a_non_default_agent(alice):
    created = alice.client().post(LIST, {"name": "Temp"}, format="json").json()

    response = alice.client().delete(f"{LIST}{created['id']}/")

    assert response.status_code == 204
    assert not Agent.objects.filter(pk=created["id"]).exists()


def test_the_default_agent_cannot_be_deleted(alice):
    default = _default(alice)

    response = alice.client().delete(f"{LIST}{default.pk}/")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "default_agent_protected"
    assert Agent.objects.filter(pk=default.pk).exists()


def test_another_tenants_agent_answers_404_and_is_untouched(alice, bob):
    bobs = _default(bob)
    client = alice.client()

    responses = [
        client.get(f"{LIST}{bobs.pk}/"),
        client.patch(f"{LIST}{bobs.pk}/", {"name": "Pwned", "is_default": True}, format="json"),
        client.delete(f"{LIST}{bobs.pk}/"),
    ]

    assert [r.status_code for r in responses] == [404, 404, 404]
    assert all(r.json()["error"]["code"] == "not_found" for r in responses)
    bobs.refresh_from_db()
    assert bobs.name == "Assistant"
    assert bobs.is_default is True
    assert _default(alice).is_default is True


def test_an_unknown_or_malformed_id_answers_json_404(alice):
    client = alice.client()

    missing = client.get(f"{LIST}0190a1b2-c3d4-7e5f-8a6b-7c8d9e0f1a2b/")
    malformed = client.get(f"{LIST}42/")

    assert missing.status_code == 404
    assert malformed.status_code == 404
    assert malformed.json()["error"]["code"] == "not_found"


def test_a_viewer_reads_agents_but_cannot_change_them(alice, alice_viewer):
    client = APIClient()
    client.login(username="victor@example.com", password="pw-victor")
    agent = _default(alice)

    assert client.get(f"{LIST}{agent.pk}/").status_code == 200
    assert client.patch(f"{LIST}{agent.pk}/", {"name": "V"}, format="json").status_code == 403
    assert client.delete(f"{LIST}{agent.pk}/").status_code == 403
    agent.refresh_from_db()
    assert agent.name == "Assistant"
