"""stages/: CRUD, schema and template validation, the initial flag, effective templates, tenancy."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from conversations.models import Conversation
from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind

LIST = "/api/v1/stages/"
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "guests": {"type": "integer", "minimum": 1}},
    "required": ["name"],
}


def _detail(stage) -> str:
    return f"{LIST}{stage.pk if hasattr(stage, 'pk') else stage}/"


def _error(response) -> dict:
    return response.json()["error"]


def _template(business, kind: str, name: str = "Custom", **kwargs) -> PromptTemplate:
    return PromptTemplate.objects.create(
        business=business, kind=kind, name=name, content="Hello from {{ business.name }}.", **kwargs
    )


@pytest.fixture
def platform_defaults(db) -> dict[str, PromptTemplate]:
    return {
        kind: _template(None, kind, name=f"Platform {kind}", is_default=True) for kind in TemplateKind.values
    }


def test_the_list_holds_only_the_callers_stages_in_order(alice, bob):
    Stage.objects.create(business=alice.business, key="booking", name="Booking", order=5)
    Stage.objects.create(business=alice.business, key="after", name="After", order=9)

    response = alice.client().get(LIST)

    assert response.status_code == 200
    assert [s["key"] for s in response.json()["results"]] == ["general", "booking", "after"]


def test_create_returns_the_stage_with_every_field(alice):
    template = _template(alice.business, TemplateKind.DATA_EXTRACTION)
    body = {
        "key": "booking",
        "name": "Booking",
        "description": "The customer wants a table.",
        "order": 3,
        "is_handoff": False,
        "data_schema": SCHEMA,
        "extraction_template": str(template.pk),
    }

    response = alice.client().post(LIST, body, format="json")

    assert response.status_code == 201, response.content
    created = response.json()
    assert {k: created[k] for k in body} == body
    assert created["selection_template"] is None
    assert created["is_initial"] is False
    assert set(created) == {
        *body,
        "id",
        "is_initial",
        "selection_template",
        "response_template",
        "effective_templates",
        "created_at",
        "updated_at",
    }
    stage = Stage.objects.get(pk=created["id"])
    assert stage.business == alice.business
    assert stage.extraction_template == template
    assert created["effective_templates"]["data_extraction"] == {
        "id": str(template.pk),
        "name": "Custom",
        "version": 1,
        "source": "stage",
    }


def test_patch_changes_only_the_given_fields(alice):
    response = alice.client().patch(
        _detail(alice.stage), {"name": "Welcome", "data_schema": SCHEMA}, format="json"
    )

    assert response.status_code == 200, response.content
    alice.stage.refresh_from_db()
    assert alice.stage.name == "Welcome"
    assert alice.stage.data_schema == SCHEMA
    assert alice.stage.key == "general"
    assert response.json()["name"] == "Welcome"


def test_an_empty_schema_means_the_stage_collects_nothing(alice):
    response = alice.client().post(LIST, {"key": "chat", "name": "Chat", "data_schema": {}}, format="json")

    assert response.status_code == 201, response.content
    assert Stage.objects.get(pk=response.json()["id"]).data_schema == {}


def test_delete_removes_the_stage_and_its_conversations_keep_going(alice):
    response = alice.client().delete(_detail(alice.stage))

    assert response.status_code == 204
    assert not Stage.objects.filter(pk=alice.stage.pk).exists()
    assert Conversation.objects.get(pk=alice.conversation.pk).stage is None


def test_a_duplicate_key_is_a_field_error_not_a_server_error(alice, bob):
    response = alice.client().post(LIST, {"key": "general", "name": "Again"}, format="json")

    assert response.status_code == 400
    assert _error(response)["code"] == "conflict"
    assert "general" in _error(response)["details"]["key"][0]
    assert Stage.objects.filter(business=alice.business).count() == 1


def test_renaming_a_key_onto_another_stage_is_refused(alice):
    other = Stage.objects.create(business=alice.business, key="booking", name="Booking")

    response = alice.client().patch(_detail(other), {"key": "general"}, format="json")

    assert response.status_code == 400
    assert "key" in _error(response)["details"]
    other.refresh_from_db()
    assert other.key == "booking"


def test_the_same_key_in_another_business_is_fine(alice, bob):
    response = bob.client().post(LIST, {"key": "booking", "name": "Booking"}, format="json")
    assert response.status_code == 201
    response = alice.client().post(LIST, {"key": "booking", "name": "Booking"}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("key", ["has space", "é-accent", "", "a" * 65])
def test_a_key_must_be_a_slug(alice, key):
    response = alice.client().post(LIST, {"key": key, "name": "Bad"}, format="json")

    assert response.status_code == 400
    assert _error(response)["code"] == "validation_error"
    assert "key" in _error(response)["details"]


def test_the_handoff_key_is_reserved(alice):
    response = alice.client().post(LIST, {"key": "__handoff__", "name": "Sneaky"}, format="json")

    assert response.status_code == 400
    assert "reserved" in _error(response)["details"]["key"][0]


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "object", "properties": {"name": {"type": "strin"}}}, "properties/name/type"),
        ({"type": "object", "required": "name"}, "required"),
        ({"type": "array", "items": {"type": "string"}}, "type"),
        ({"properties": {"name": {"type": "string"}}}, "type"),
        ([{"type": "object"}], "(root)"),
        ("object", "(root)"),
        (
            {"type": "object", "properties": {"x": {"$ref": "https://evil.example/s.json"}}},
            "properties/x/$ref",
        ),
    ],
)
def test_an_invalid_data_schema_is_refused_with_its_path(alice, schema, path):
    response = alice.client().post(
        LIST, {"key": "booking", "name": "B", "data_schema": schema}, format="json"
    )

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "invalid_schema"
    assert [e["path"] for e in error["details"]["data_schema"]] == [path]
    assert not Stage.objects.filter(business=alice.business, key="booking").exists()


def test_an_invalid_schema_in_a_patch_changes_nothing(alice):
    response = alice.client().patch(
        _detail(alice.stage), {"name": "Renamed", "data_schema": {"type": 12}}, format="json"
    )

    assert response.status_code == 400
    assert "data_schema" in _error(response)["details"]
    alice.stage.refresh_from_db()
    assert alice.stage.name == "General"
    assert alice.stage.data_schema == {}


def test_setting_is_initial_clears_it_on_the_other_stages(alice, bob):
    client = alice.client()

    created = client.post(LIST, {"key": "welcome", "name": "Welcome", "is_initial": True}, format="json")

    assert created.status_code == 201, created.content
    alice.stage.refresh_from_db()
    assert alice.stage.is_initial is False
    assert Stage.objects.get(pk=created.json()["id"]).is_initial is True
    # Bob's initial stage is his own business.
    assert Stage.objects.get(pk=bob.stage.pk).is_initial is True

    response = client.patch(_detail(alice.stage), {"is_initial": True}, format="json")
    assert response.status_code == 200
    assert list(Stage.objects.filter(business=alice.business, is_initial=True)) == [alice.stage]


def test_a_template_of_the_wrong_kind_is_refused(alice):
    # alice.template is a response_generation template.
    response = alice.client().post(
        LIST, {"key": "b", "name": "B", "selection_template": str(alice.template.pk)}, format="json"
    )

    assert response.status_code == 400
    assert "stage_selection" in _error(response)["details"]["selection_template"][0]
    assert not Stage.objects.filter(business=alice.business, key="b").exists()


def test_an_unknown_template_id_is_not_found(alice):
    response = alice.client().patch(
        _detail(alice.stage), {"response_template": str(uuid.uuid4())}, format="json"
    )

    assert response.status_code == 400
    assert _error(response)["details"]["response_template"] == ["Template not found."]


def test_a_malformed_template_id_is_a_field_error(alice):
    response = alice.client().patch(_detail(alice.stage), {"response_template": "nope"}, format="json")

    assert response.status_code == 400
    assert "response_template" in _error(response)["details"]


def test_bob_cannot_point_his_stage_at_alices_template(alice, bob):
    client = bob.client()

    patched = client.patch(_detail(bob.stage), {"response_template": str(alice.template.pk)}, format="json")
    created = client.post(
        LIST, {"key": "x", "name": "X", "response_template": str(alice.template.pk)}, format="json"
    )

    for response in (patched, created):
        assert response.status_code == 400
        # The same answer as an id that does not exist: nothing tells Bob the id is real.
        assert _error(response)["details"]["response_template"] == ["Template not found."]
        assert alice.template.name not in response.content.decode()
    bob.stage.refresh_from_db()
    assert bob.stage.response_template is None
    assert not Stage.objects.filter(business=bob.business, key="x").exists()


def test_a_platform_template_may_be_chosen(alice, platform_defaults):
    platform = platform_defaults[TemplateKind.STAGE_SELECTION]

    response = alice.client().patch(
        _detail(alice.stage), {"selection_template": str(platform.pk)}, format="json"
    )

    assert response.status_code == 200, response.content
    assert response.json()["effective_templates"]["stage_selection"]["source"] == "stage"
    alice.stage.refresh_from_db()
    assert alice.stage.selection_template == platform


def test_a_template_can_be_cleared_with_null(alice):
    alice.stage.response_template = alice.template
    alice.stage.save()

    response = alice.client().patch(_detail(alice.stage), {"response_template": None}, format="json")

    assert response.status_code == 200
    alice.stage.refresh_from_db()
    assert alice.stage.response_template is None


def test_effective_templates_fall_back_from_stage_to_business_to_platform(alice, bob, platform_defaults):
    client = alice.client()
    kind = TemplateKind.RESPONSE_GENERATION

    def effective() -> dict:
        return client.get(_detail(alice.stage)).json()["effective_templates"][kind]

    platform = platform_defaults[kind]
    assert effective() == {
        "id": str(platform.pk),
        "name": platform.name,
        "version": 1,
        "source": "platform_default",
    }

    # Bob's business default is not Alice's.
    _template(bob.business, kind, name="Bob default", is_default=True)
    assert effective()["source"] == "platform_default"

    business_default = _template(alice.business, kind, name="Alice default", is_default=True)
    assert effective()["id"] == str(business_default.pk)
    assert effective()["source"] == "business_default"

    alice.stage.response_template = alice.template
    alice.stage.save()
    assert effective()["id"] == str(alice.template.pk)
    assert effective()["source"] == "stage"


def test_effective_templates_are_null_when_no_default_exists(alice):
    response = alice.client().get(_detail(alice.stage))

    assert response.json()["effective_templates"]["stage_selection"] == {
        "id": None,
        "name": None,
        "version": None,
        "source": None,
    }


def test_the_list_reads_the_defaults_once_not_per_stage(
    alice, platform_defaults, django_assert_max_num_queries
):
    for n in range(10):
        Stage.objects.create(business=alice.business, key=f"s{n}", name=f"S{n}", order=n + 1)
    client = alice.client()
    client.get(LIST)  # warm the key's last_used_at write

    with django_assert_max_num_queries(4):
        response = client.get(LIST)

    assert len(response.json()["results"]) == 11


@pytest.mark.parametrize("field", ["id", "business", "effective_templates", "created_at", "colour"])
def test_unknown_and_read_only_fields_are_refused(alice, field):
    response = alice.client().patch(_detail(alice.stage), {field: "x", "name": "Renamed"}, format="json")

    assert response.status_code == 400
    assert field in _error(response)["details"]
    alice.stage.refresh_from_db()
    assert alice.stage.name == "General"


def test_a_viewer_can_read_but_not_write(alice, alice_viewer):
    client = APIClient()
    client.force_login(alice_viewer)

    assert client.get(LIST).status_code == 200
    assert client.post(LIST, {"key": "v", "name": "V"}, format="json").status_code == 403
    assert client.patch(_detail(alice.stage), {"name": "V"}, format="json").status_code == 403
    assert client.delete(_detail(alice.stage)).status_code == 403
    assert Stage.objects.filter(business=alice.business).count() == 1


def test_an_editor_can_write(alice, alice_editor):
    client = APIClient()
    client.force_login(alice_editor)

    assert client.post(LIST, {"key": "e", "name": "E"}, format="json").status_code == 201


def test_bobs_key_on_alices_stage_answers_404_and_changes_nothing(alice, bob):
    client = bob.client()
    url = _detail(alice.stage)

    assert client.get(url).status_code == 404
    assert client.patch(url, {"name": "Hacked"}, format="json").status_code == 404
    assert client.put(url, {"key": "general", "name": "Hacked"}, format="json").status_code == 404
    assert client.delete(url).status_code == 404

    alice.stage.refresh_from_db()
    assert alice.stage.name == "General"
    assert _error(client.get(url))["code"] == "not_found"


def test_a_malformed_stage_id_is_not_found(alice):
    assert alice.client().get(f"{LIST}not-a-uuid/").status_code == 404


def test_platform_keys_cannot_use_stages(master_client, alice):
    assert master_client.get(LIST).status_code == 403
