"""Regular expressions in stage data schemas: a pattern that can backtrack catastrophically,
or that the linear-time engine (RE2) cannot run, is refused at save time naming it."""

from __future__ import annotations

import pytest
from django.test import Client

from icmp.jsonschemas import tenant_schema_errors
from stages.models import Stage
from tests.admin import admin_url, form_post_data

LIST = "/api/v1/stages/"


def _string_with(pattern: str) -> dict:
    return {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}}


REFUSED = [
    pytest.param(_string_with("^(a+)+$"), "properties/code/pattern", "^(a+)+$", "catastroph", id="nested"),
    pytest.param(
        {"type": "object", "patternProperties": {"^(a+)+$": {"type": "string"}}},
        "patternProperties/^(a+)+$",
        "^(a+)+$",
        "catastroph",
        id="pattern-properties-key",
    ),
    pytest.param(
        _string_with("^(a|ab)*c$"), "properties/code/pattern", "^(a|ab)*c$", "catastroph", id="overlap"
    ),
    pytest.param(
        {"type": "object", "properties": {"tags": {"type": "array", "items": {"pattern": "^(\\d+)*$"}}}},
        "properties/tags/items/pattern",
        "^(\\d+)*$",
        "catastroph",
        id="in-items",
    ),
    pytest.param(
        {"type": "object", "propertyNames": {"pattern": "^(x|x)+$"}},
        "propertyNames/pattern",
        "^(x|x)+$",
        "catastroph",
        id="property-names",
    ),
    pytest.param(_string_with("^(a)\\1$"), "properties/code/pattern", "^(a)\\1$", "RE2", id="backreference"),
    pytest.param(_string_with("^a(?=b)"), "properties/code/pattern", "^a(?=b)", "RE2", id="lookahead"),
    pytest.param(
        {
            "type": "object",
            "patternProperties": {"^x_": {"type": "string"}},
            "unevaluatedProperties": False,
        },
        "(root)",
        "patternProperties",
        "unevaluatedProperties",
        id="unevaluated-with-pattern-properties",
    ),
    # Behind a keyword the walk did not know ($ref to a sibling): jsonschema still follows it.
    pytest.param(
        {
            "type": "object",
            "$ref": "#/x",
            "unevaluatedProperties": False,
            "x": {"patternProperties": {"^(a+)+$": {}}},
        },
        ["x/patternProperties/^(a+)+$", "(root)"],
        "^(a+)+$",
        "catastroph",
        id="behind-ref",
    ),
    pytest.param(
        {"type": "object", "$ref": "#/x", "x": {"properties": {"a": {"pattern": "^(a)\\1$"}}}},
        "x/properties/a/pattern",
        "^(a)\\1$",
        "RE2",
        id="pattern-behind-ref",
    ),
]


@pytest.mark.parametrize(("schema", "path", "named", "why"), REFUSED)
def test_an_unsafe_pattern_is_refused_at_save_naming_it(alice, schema, path, named, why):
    response = alice.client().post(
        LIST, {"key": "codes", "name": "Codes", "data_schema": schema}, format="json"
    )

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_schema"
    assert named in error["message"] and why in error["message"]
    assert [e["path"] for e in error["details"]["data_schema"]] == ([path] if isinstance(path, str) else path)
    assert not Stage.objects.filter(business=alice.business, key="codes").exists()


def test_an_unsafe_pattern_in_a_patch_changes_nothing(alice):
    response = alice.client().patch(
        f"{LIST}{alice.stage.pk}/", {"data_schema": _string_with("^(a+)+$")}, format="json"
    )

    assert response.status_code == 400
    assert "^(a+)+$" in response.json()["error"]["message"]
    alice.stage.refresh_from_db()
    assert alice.stage.data_schema == {}


@pytest.mark.parametrize(
    "pattern",
    [
        "^[A-Z]{2}[0-9]{6}$",
        "^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$",
        "^\\+?[0-9 ()-]{7,20}$",
        "^([01]?\\d|2[0-3]):[0-5]\\d$",
        "(?i)^(yes|no)$",
    ],
)
def test_ordinary_patterns_are_accepted(alice, pattern):
    response = alice.client().post(
        LIST, {"key": "codes", "name": "Codes", "data_schema": _string_with(pattern)}, format="json"
    )

    assert response.status_code == 201, response.content


def test_the_admin_stage_form_refuses_an_unsafe_pattern_naming_it(alice, alice_editor):
    client = Client()
    client.force_login(alice_editor)
    page = client.get(admin_url(alice.stage, "change"))
    data = {
        **form_post_data(page),
        "data_schema": '{"type": "object", "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}}}',
    }

    response = client.post(admin_url(alice.stage, "change"), data)

    assert response.status_code == 200  # the form again, with the error
    html = response.content.decode()
    assert "properties/code/pattern" in html
    assert "^(a+)+$" in html
    alice.stage.refresh_from_db()
    assert alice.stage.data_schema == {}


def test_a_schema_nested_too_deeply_is_a_400_not_a_server_error(alice):
    nested: dict = {"type": "string"}
    for _ in range(300):
        nested = {"not": nested}
    schema = {"type": "object", "properties": {"x": nested}}

    response = alice.client().post(
        LIST, {"key": "deep", "name": "Deep", "data_schema": schema}, format="json"
    )

    # The API's JSON parser refuses the body at the door (64 levels at most) ...
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    # ... and the schema check, which the admin's form reaches too, names the depth itself.
    assert tenant_schema_errors(schema) == [{"path": "(root)", "message": "The schema is nested too deeply."}]
