"""templates/: CRUD, sandbox validation, versions, preview, platform defaults, tenancy."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.rendering import VARIABLES

LIST = "/api/v1/templates/"
RESPONSE = TemplateKind.RESPONSE_GENERATION


def _detail(template, suffix: str = "") -> str:
    return f"{LIST}{template.pk}/{suffix}"


def _error(response) -> dict:
    return response.json()["error"]


@pytest.fixture
def platform_template(db) -> PromptTemplate:
    return PromptTemplate.objects.create(
        business=None, kind=RESPONSE, name="Platform reply", content="Be helpful.", is_default=True
    )


def _create(client, **overrides):
    body = {"kind": RESPONSE, "name": "Short reply", "content": "Answer as {{ agent.name }}.", **overrides}
    return client.post(LIST, body, format="json")


def test_create_returns_the_template_at_version_one(alice):
    response = _create(alice.client(), description="For busy days.")

    assert response.status_code == 201, response.content
    created = response.json()
    assert created["version"] == 1
    assert created["is_platform"] is False
    assert created["is_default"] is False
    assert set(created) == {
        "id",
        "kind",
        "name",
        "description",
        "content",
        "is_default",
        "version",
        "is_platform",
        "created_at",
        "updated_at",
    }
    template = PromptTemplate.objects.get(pk=created["id"])
    assert template.business == alice.business
    assert template.content == "Answer as {{ agent.name }}."


def test_the_list_holds_only_the_callers_templates(alice, bob, platform_template):
    response = alice.client().get(LIST)

    assert response.status_code == 200
    assert [t["id"] for t in response.json()["results"]] == [str(alice.template.pk)]


def test_include_platform_adds_the_platform_defaults(alice, bob, platform_template):
    response = alice.client().get(LIST, {"include_platform": "true"})

    results = {t["id"]: t for t in response.json()["results"]}
    assert set(results) == {str(alice.template.pk), str(platform_template.pk)}
    assert results[str(platform_template.pk)]["is_platform"] is True


def test_include_platform_must_be_a_boolean(alice):
    response = alice.client().get(LIST, {"include_platform": "perhaps"})

    assert response.status_code == 400
    assert "include_platform" in _error(response)["details"]


def test_the_list_filters_by_kind(alice):
    PromptTemplate.objects.create(
        business=alice.business, kind=TemplateKind.STAGE_SELECTION, name="Pick", content="{{ stages }}"
    )

    response = alice.client().get(LIST, {"kind": TemplateKind.STAGE_SELECTION})

    assert [t["name"] for t in response.json()["results"]] == ["Pick"]


def test_a_platform_template_is_readable_but_not_changeable(alice, platform_template):
    client = alice.client()

    assert client.get(_detail(platform_template)).json()["is_platform"] is True
    assert (
        client.patch(_detail(platform_template), {"content": "Mine now."}, format="json").status_code == 404
    )
    assert client.delete(_detail(platform_template)).status_code == 404

    platform_template.refresh_from_db()
    assert platform_template.content == "Be helpful."


def test_kind_cannot_change(alice):
    response = alice.client().patch(
        _detail(alice.template), {"kind": TemplateKind.STAGE_SELECTION}, format="json"
    )

    assert response.status_code == 400
    assert _error(response)["code"] == "immutable"
    assert "kind" in _error(response)["details"]
    alice.template.refresh_from_db()
    assert alice.template.kind == RESPONSE


def test_an_unknown_kind_is_refused(alice):
    response = _create(alice.client(), kind="small_talk")

    assert response.status_code == 400
    assert "kind" in _error(response)["details"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Hi {{ customer_secret }}", "'customer_secret'"),
        ("Hi {{ handoff_key }}", "'handoff_key'"),  # a stage_selection variable, not a response one
        ("Line one\n{% if business.name %}open", "line 2"),
        ("{{ ''.__class__.__mro__ }}", "__mro__"),
        ("{{ business|attr('__class__') }}", "attr"),
        ("{{ business['__globals__'] }}", "__globals__"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro"),
        # Blocks call themselves through `self`, with no loop to count: unbounded and nearly free.
        (
            "{% set contact = namespace(d=0) %}{% block a %}{% if contact.d < 15 %}"
            "{% set contact.d = contact.d + 1 %}{{ self.a() }}{{ self.a() }}"
            "{% set contact.d = contact.d - 1 %}{% endif %}{% endblock %}x",
            "{% block %} tag is not allowed",
        ),
        ("{{ self }}", "'self' variable is not allowed"),
        ("{{ 'x' * 10000000 }}", "value_size limit"),
        ("   ", "empty"),
    ],
)
def test_bad_content_is_refused_naming_the_problem_and_nothing_is_written(alice, content, expected):
    client = alice.client()

    created = _create(client, name="Bad", content=content)
    patched = client.patch(_detail(alice.template), {"content": content}, format="json")

    for response in (created, patched):
        assert response.status_code == 400, response.content
        error = _error(response)
        assert error["code"] in ("invalid_template", "validation_error", "value_size_limit")
        assert "content" in error["details"]
        if error["code"] != "validation_error":
            assert expected in error["message"]
    assert not PromptTemplate.objects.filter(name="Bad").exists()
    alice.template.refresh_from_db()
    assert alice.template.version == 1
    assert alice.template.content == "You are {{ agent.name }} for {{ business.name }}."
    assert alice.template.history.count() == 1


def test_a_syntax_error_names_its_line(alice):
    response = _create(alice.client(), content="ok\n{{ business.name }\n")

    assert response.status_code == 400
    assert _error(response)["message"].startswith("line 2: Syntax error")


def test_the_version_goes_up_only_when_the_content_changes(alice):
    client = alice.client()
    url = _detail(alice.template)

    assert client.patch(url, {"name": "Renamed"}, format="json").json()["version"] == 1
    assert client.patch(url, {"content": "v2 {{ business.name }}"}, format="json").json()["version"] == 2
    assert client.patch(url, {"content": "v2 {{ business.name }}"}, format="json").json()["version"] == 2
    assert client.patch(url, {"content": "v3 {{ agent.name }}"}, format="json").json()["version"] == 3

    alice.template.refresh_from_db()
    assert alice.template.version == 3


def test_versions_list_the_history_newest_first(alice):
    client = alice.client()
    url = _detail(alice.template)
    client.patch(url, {"content": "v2 {{ business.name }}"}, format="json")
    client.patch(url, {"name": "Renamed"}, format="json")

    response = client.get(_detail(alice.template, "versions/"))

    assert response.status_code == 200
    page = response.json()
    assert set(page) >= {"results", "next"}
    rows = page["results"]
    assert [(r["version"], r["name"], r["change_type"]) for r in rows] == [
        (2, "Renamed", "~"),
        (2, "Friendly reply", "~"),
        (1, "Friendly reply", "+"),
    ]
    assert rows[1]["content"] == "v2 {{ business.name }}"
    assert rows[2]["content"] == "You are {{ agent.name }} for {{ business.name }}."
    assert all(r["changed_by"] is None for r in rows)  # an API key is nobody's login
    assert set(rows[0]) == {
        "version",
        "content",
        "name",
        "is_default",
        "changed_at",
        "changed_by",
        "change_type",
    }


def test_versions_name_the_staff_member_who_changed_it(alice, alice_editor):
    client = APIClient()
    client.force_login(alice_editor)

    client.patch(_detail(alice.template), {"content": "Edited {{ business.name }}"}, format="json")

    rows = client.get(_detail(alice.template, "versions/")).json()["results"]
    assert rows[0]["changed_by"] == "eve@example.com"


def test_versions_are_paginated(alice):
    client = alice.client()
    for n in range(3):
        client.patch(_detail(alice.template), {"content": f"v{n} {{{{ business.name }}}}"}, format="json")

    first = client.get(_detail(alice.template, "versions/"), {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert [r["version"] for r in first["results"]] == [4, 3]
    assert [r["version"] for r in second["results"]] == [2, 1]


def test_making_a_template_default_unsets_the_other_default_of_its_kind(alice, bob):
    client = alice.client()
    first = _create(client, name="First", is_default=True).json()
    other_kind = _create(
        client, kind=TemplateKind.STAGE_SELECTION, name="Pick", content="{{ stages }}", is_default=True
    ).json()
    bobs = PromptTemplate.objects.create(
        business=bob.business, kind=RESPONSE, name="Bob's", content="Hi.", is_default=True
    )

    second = _create(client, name="Second", is_default=True).json()

    assert PromptTemplate.objects.get(pk=first["id"]).is_default is False
    assert PromptTemplate.objects.get(pk=second["id"]).is_default is True
    assert PromptTemplate.objects.get(pk=other_kind["id"]).is_default is True
    assert PromptTemplate.objects.get(pk=bobs.pk).is_default is True

    client.patch(f"{LIST}{first['id']}/", {"is_default": True}, format="json")
    assert PromptTemplate.objects.get(pk=second["id"]).is_default is False


def test_a_duplicate_name_in_the_same_kind_is_refused(alice, bob):
    client = alice.client()

    response = _create(client, name="Friendly reply")

    assert response.status_code == 400
    assert _error(response)["code"] == "conflict"
    assert "name" in _error(response)["details"]
    assert PromptTemplate.objects.filter(business=alice.business).count() == 1
    # Another kind, or another business, may use the name.
    assert _create(client, kind=TemplateKind.STAGE_SELECTION, name="Friendly reply").status_code == 201
    assert _create(bob.client(), name="Short reply").status_code == 201


def test_a_tenant_may_reuse_a_platform_templates_name(alice, platform_template):
    assert _create(alice.client(), name=platform_template.name).status_code == 201


@pytest.mark.parametrize("field", ["id", "version", "is_platform", "business", "updated_at", "colour"])
def test_unknown_and_read_only_fields_are_refused(alice, field):
    response = alice.client().patch(_detail(alice.template), {field: 7, "name": "Renamed"}, format="json")

    assert response.status_code == 400
    assert field in _error(response)["details"]
    alice.template.refresh_from_db()
    assert alice.template.name == "Friendly reply"


def test_deleting_a_template_makes_its_stages_fall_back(alice):
    alice.stage.response_template = alice.template
    alice.stage.save()

    response = alice.client().delete(_detail(alice.template))

    assert response.status_code == 204
    assert Stage.objects.get(pk=alice.stage.pk).response_template is None


def _preview(client, template, **body):
    return client.post(_detail(template, "preview/"), body, format="json")


def test_preview_renders_with_the_business_stage_and_conversation(alice):
    alice.stage.data_schema = {
        "type": "object",
        "properties": {"guests": {"type": "integer"}, "date": {"type": "string"}},
        "required": ["guests", "date"],
    }
    alice.stage.save()
    alice.conversation.collected_data = {"guests": 4}
    alice.conversation.save()
    template = PromptTemplate.objects.create(
        business=alice.business,
        kind=RESPONSE,
        name="Preview",
        content=(
            "{{ agent.name }} of {{ business.name }} in {{ stage.key }} "
            "({{ stages|map(attribute='key')|join(',') }}). "
            "Guests: {{ collected_data.guests }}. Missing: {{ missing_fields|join(',') }}. "
            "Contact: {{ contact.name }} on {{ contact.channel }}. Buttons: {{ quick_replies_allowed }}."
        ),
    )

    response = _preview(alice.client(), template, conversation=str(alice.conversation.pk))

    assert response.status_code == 200, response.content
    assert response.json() == {
        "rendered": "Assistant of Alice's Bakery in general (general). Guests: 4. Missing: date. "
        "Contact: Customer on whatsapp. Buttons: True.",
        "variables": list(VARIABLES[RESPONSE]),
    }


def test_preview_without_a_conversation_uses_the_initial_stage_or_the_one_given(alice):
    other = Stage.objects.create(business=alice.business, key="booking", name="Booking", order=2)
    template = PromptTemplate.objects.create(
        business=alice.business,
        kind=RESPONSE,
        name="Stage",
        content="[{{ stage.name }}|{{ collected_data }}]",
    )
    client = alice.client()

    assert _preview(client, template).json()["rendered"] == "[General|{}]"
    assert _preview(client, template, stage=str(other.pk)).json()["rendered"] == "[Booking|{}]"


def test_preview_with_sample_data(alice):
    response = _preview(alice.client(), alice.template, sample=True)

    assert response.status_code == 200
    assert response.json()["rendered"] == "You are Assistant for Sample business."


def test_preview_of_a_platform_template(alice, platform_template):
    response = _preview(alice.client(), platform_template)

    assert response.status_code == 200
    assert response.json()["rendered"] == "Be helpful."


def test_a_render_error_in_preview_is_a_400_with_the_message(alice):
    # Accepted at save time (the sample has no such key), fails on the real data.
    template = PromptTemplate.objects.create(
        business=alice.business, kind=RESPONSE, name="Strict", content="{{ business.config.opening }}"
    )

    response = _preview(alice.client(), template)

    assert response.status_code == 400
    assert _error(response)["code"] == "render_error"
    assert "opening" in _error(response)["message"]


def test_preview_refuses_another_tenants_conversation_and_stage(alice, bob):
    client = bob.client()

    by_conversation = _preview(client, bob.template, conversation=str(alice.conversation.pk))
    by_stage = _preview(client, bob.template, stage=str(alice.stage.pk))
    unknown = _preview(client, bob.template, stage=str(uuid.uuid4()))

    assert by_conversation.status_code == 400
    assert _error(by_conversation)["details"] == {"conversation": ["Conversation not found."]}
    assert by_stage.status_code == 400
    assert _error(by_stage)["details"] == {"stage": ["Stage not found."]}
    assert _error(unknown)["details"] == _error(by_stage)["details"]


def test_preview_refuses_unknown_fields(alice):
    response = _preview(alice.client(), alice.template, content="{{ 1 }}")

    assert response.status_code == 400
    assert "content" in _error(response)["details"]


def test_a_viewer_may_read_and_preview_but_not_write(alice, alice_viewer):
    client = APIClient()
    client.force_login(alice_viewer)

    assert client.get(LIST).status_code == 200
    assert client.get(_detail(alice.template, "versions/")).status_code == 200
    assert _preview(client, alice.template).status_code == 200
    assert _create(client).status_code == 403
    assert client.patch(_detail(alice.template), {"name": "V"}, format="json").status_code == 403
    assert client.delete(_detail(alice.template)).status_code == 403


def test_bobs_key_on_alices_template_answers_404_and_changes_nothing(alice, bob):
    client = bob.client()
    before = list(PromptTemplate.objects.filter(business=alice.business).values())

    responses = [
        client.get(_detail(alice.template)),
        client.patch(_detail(alice.template), {"content": "Hacked {{ business.name }}"}, format="json"),
        client.put(
            _detail(alice.template), {"kind": RESPONSE, "name": "Hacked", "content": "Hacked"}, format="json"
        ),
        client.delete(_detail(alice.template)),
        client.get(_detail(alice.template, "versions/")),
        _preview(client, alice.template),
        _preview(client, alice.template, sample=True),
    ]

    assert [r.status_code for r in responses] == [404] * len(responses)
    assert all(_error(r)["code"] == "not_found" for r in responses)
    assert all("You are" not in r.content.decode() for r in responses)
    assert list(PromptTemplate.objects.filter(business=alice.business).values()) == before
    assert alice.template.history.count() == 1
