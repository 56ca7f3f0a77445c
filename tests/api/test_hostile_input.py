"""Hostile input answers 400 with the JSON error body, never a 500, and writes nothing:
bodies nested thousands deep, lone UTF-16 surrogates, and dates that overflow in UTC.

Routes and parameters come from the OpenAPI schema, so a new JSON route or date
parameter is walked automatically.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from businesses.models import Agent
from tests.conftest import MASTER_KEY
from tests.hostile_input import (
    OVERFLOWING_DATETIMES,
    PROBE_DEPTH,
    date_times,
    hostile_bodies,
    nested,
)
from tests.test_tenancy import PLATFORM_SEGMENTS, _object_id, _snapshot

AGENTS = "/api/v1/agents/"
USAGE = "/api/v1/usage/"
LLM_CALLS = "/api/v1/llm-calls/"
FUZZ = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def body_operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path template) of every operation that takes a JSON body."""
    return [
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


def _formats(parameter_schema: dict[str, Any]) -> set[str]:
    variants = [parameter_schema, *parameter_schema.get("anyOf", []), *parameter_schema.get("oneOf", [])]
    return {variant.get("format") for variant in variants}


def date_parameters(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, name) of every query parameter documented as a date or a date-time."""
    return [
        (path, parameter["name"])
        for path, operations in schema["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and _formats(parameter["schema"]) & {"date", "date-time"}
    ]


def _segment(path: str) -> str:
    return path.removeprefix("/api/v1/").split("/", 1)[0]


def _client_for(path: str, tenant) -> APIClient:
    if _segment(path) in PLATFORM_SEGMENTS:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {MASTER_KEY}")
        return client
    return tenant.client()


def _url(path: str, tenant) -> str:
    """The path with its ids filled in with the tenant's own objects, so the body is reached."""
    return re.sub(r"\{\w+\}", lambda _: _object_id(_segment(path), tenant), path)


def _send(method: str, path: str, tenant, body: bytes):
    client = _client_for(path, tenant)
    return getattr(client, method)(_url(path, tenant), data=body, content_type="application/json")


def _snapshot_after_auth(tenant) -> str:
    """The tenant's rows once its key has been used (authentication stamps last_used_at)."""
    assert tenant.client().get("/api/v1/auth/check/").status_code == 200
    return _snapshot(tenant.business)


def _error(response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


HOSTILE_BODIES = {
    "nested 60,000 deep": ('{"name": ' + nested(PROBE_DEPTH) + "}").encode(),
    "lone surrogate in a value": b'{"name": "Caf\\ud800", "content": "\\udfff"}',
    "lone surrogate in a key": b'{"\\udc00": "x"}',
    "lone surrogate deep inside": b'{"config": {"a": ["ok", {"b": "\\ud834"}]}}',
}


@pytest.mark.parametrize("kind", list(HOSTILE_BODIES))
def test_every_json_route_answers_a_hostile_body_400_and_writes_nothing(alice, schema, kind):
    operations = body_operations(schema)
    assert len(operations) >= 19, operations
    before = _snapshot_after_auth(alice)

    for method, path in operations:
        error = _error(_send(method, path, alice, HOSTILE_BODIES[kind]))
        assert error["code"] == "parse_error", (method, path, error)

    assert _snapshot(alice.business) == before


def test_the_parse_error_says_what_is_wrong(alice):
    from icmp import strict_json

    deep = _error(
        alice.client().post(
            AGENTS, data=HOSTILE_BODIES["nested 60,000 deep"], content_type="application/json"
        )
    )
    surrogate = _error(
        alice.client().post(AGENTS, data=b'{"name": "\\ud800"}', content_type="application/json")
    )

    assert f"{strict_json.MAX_DEPTH} levels" in deep["message"]
    assert "surrogate" in surrogate["message"]


def test_nesting_up_to_the_limit_is_parsed_and_one_level_more_is_refused(alice):
    from icmp import strict_json

    limit = strict_json.MAX_DEPTH
    client = alice.client()

    at_limit = client.post(
        AGENTS, data='{"name": ' + nested(limit - 1) + "}", content_type="application/json"
    )
    over = client.post(AGENTS, data='{"name": ' + nested(limit) + "}", content_type="application/json")

    # Parsed: the serializer then refuses a list where a name belongs.
    assert _error(at_limit)["code"] == "validation_error"
    assert _error(over)["code"] == "parse_error"


def test_paired_surrogates_are_ordinary_characters(alice):
    # "\ud83c\udf70" is one character (a cake) written as a UTF-16 pair: valid JSON and Unicode.
    response = alice.client().post(
        AGENTS, data=b'{"name": "Cake \\ud83c\\udf70"}', content_type="application/json"
    )

    assert response.status_code == 201, response.content
    assert Agent.objects.get(business=alice.business, name="Cake \U0001f370")


def test_random_hostile_bodies_on_random_json_routes_answer_400(alice, schema):
    operations = body_operations(schema)

    @FUZZ
    @given(operation=st.sampled_from(operations), body=hostile_bodies())
    def check(operation: tuple[str, str], body: bytes) -> None:
        method, path = operation
        error = _error(_send(method, path, alice, body))
        assert error["code"] == "parse_error", (method, path, error)

    before = _snapshot_after_auth(alice)
    check()
    assert _snapshot(alice.business) == before


# --- Dates ---------------------------------------------------------------------------


def test_every_date_parameter_refuses_values_that_overflow_in_utc(alice, schema):
    parameters = date_parameters(schema)
    assert {
        (LLM_CALLS, "created_after"),
        (LLM_CALLS, "created_before"),
        (USAGE, "since"),
        (USAGE, "until"),
    } <= set(parameters)
    client = alice.client()

    for path, name in parameters:
        for value in OVERFLOWING_DATETIMES:
            error = _error(client.get(path, {name: value}))
            assert error["code"] == "validation_error"
            assert name in error["details"], (path, name, value, error)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        # The default period (30 days before `until`) would start before year 1.
        ({"until": "0001-01-01T00:00:00"}, "until"),
        ({"until": "0001-01-01"}, "until"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-14:00"}, "until"),
    ],
)
def test_usage_names_the_parameter_whose_date_is_out_of_range(alice, params, field):
    error = _error(alice.client().get(USAGE, params))

    assert error["code"] == "validation_error"
    assert list(error["details"]) == [field]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (USAGE, {"since": "0001-01-01T00:00:00", "until": "0001-01-01T00:00:01"}),
        (USAGE, {"since": "0001-01-01", "until": "9999-12-30"}),
        (LLM_CALLS, {"created_after": "0001-01-01T00:00:00Z", "created_before": "9999-12-31T23:59:59Z"}),
        (LLM_CALLS, {"created_after": "0001-01-01T14:00:00+14:00"}),
    ],
)
def test_the_ends_of_the_calendar_are_still_valid_dates(alice, path, params):
    assert alice.client().get(path, params).status_code == 200


def test_an_api_key_expiry_that_overflows_in_utc_answers_400(alice):
    response = alice.client().post(
        "/api/v1/api-keys/", {"name": "far", "expires_at": "9999-12-31T23:59:59-14:00"}, format="json"
    )

    assert "expires_at" in _error(response)["details"]


def test_random_date_times_in_every_date_parameter_never_break_the_api(alice, schema):
    parameters = date_parameters(schema)
    client = alice.client()

    @FUZZ
    @given(parameter=st.sampled_from(parameters), value=date_times)
    def check(parameter: tuple[str, str], value: str) -> None:
        path, name = parameter
        response = client.get(path, {name: value})
        assert response.status_code in (200, 400), (path, name, value, response.status_code)
        if response.status_code == 400:
            assert name in _error(response)["details"], (path, name, value)

    check()


def test_a_body_is_read_as_utf8_whatever_charset_the_client_names(alice):
    # In UTF-7 "A+2AA-" is "A" and a lone surrogate: decoding with the client's charset
    # stored one, and every later GET /business/ failed to encode it (a 500).
    client = alice.client()
    response = client.patch(
        "/api/v1/business/",
        data=b'{"config": {"extra": {"x": "A+2AA-"}}}',
        content_type="application/json; charset=utf-7",
    )

    assert response.status_code == 200, response.content
    after = client.get("/api/v1/business/")
    assert after.status_code == 200
    assert after.json()["config"]["extra"]["x"] == "A+2AA-"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b'{"name": "Caf\xe9"}', "application/json; charset=latin-1", id="latin-1"),
        pytest.param('{"name": "x"}'.encode("utf-16"), "application/json; charset=utf-16", id="utf-16"),
        pytest.param(b'{"name": "\xed\xa0\x80"}', "application/json", id="encoded-surrogate"),
    ],
)
def test_a_body_that_is_not_utf8_is_a_parse_error(alice, body, content_type):
    before = _snapshot_after_auth(alice)

    error = _error(alice.client().post(AGENTS, data=body, content_type=content_type))

    assert error["code"] == "parse_error"
    assert "UTF-8" in error["message"]
    assert _snapshot(alice.business) == before
