"""Bad input gets a clear JSON answer; throttling, CORS and the OpenAPI schema."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from businesses.models import Agent

AGENTS = "/api/v1/agents/"


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def test_malformed_json_answers_400_parse_error(alice):
    response = alice.client().post(AGENTS, data='{"name": "Broken",', content_type="application/json")

    _error(response, 400, "parse_error")
    assert not Agent.objects.filter(name="Broken").exists()


@pytest.mark.parametrize("body", ['["a", "list"]', '"a string"', "42", "null"])
def test_a_body_that_is_not_an_object_answers_400(alice, body):
    response = alice.client().post(AGENTS, data=body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"validation_error", "parse_error"}
    assert Agent.objects.filter(business=alice.business).count() == 1


def test_wrong_types_answer_400_with_field_details(alice):
    response = alice.client().post(AGENTS, {"name": {"first": "x"}, "max_tokens": [1]}, format="json")

    error = _error(response, 400, "validation_error")
    assert set(error["details"]) == {"name", "max_tokens"}
    assert error["message"] == "Invalid input."


def test_unknown_fields_answer_400_naming_them(alice):
    response = alice.client().post(AGENTS, {"name": "Ok", "nmae": "typo"}, format="json")

    error = _error(response, 400, "validation_error")
    assert list(error["details"]) == ["nmae"]
    assert not Agent.objects.filter(name="Ok").exists()


@override_settings(API_MAX_BODY_BYTES=1024)
def test_a_body_over_the_limit_answers_413_and_writes_nothing(alice):
    response = alice.client().post(AGENTS, {"name": "Big", "persona": "x" * 2000}, format="json")

    error = _error(response, 413, "request_too_large")
    assert error["details"]["limit_bytes"] == 1024
    assert not Agent.objects.filter(name="Big").exists()


def test_a_body_that_is_not_json_answers_415(alice):
    response = alice.client().post(AGENTS, data="name=Form", content_type="application/x-www-form-urlencoded")

    _error(response, 415, "unsupported_media_type")
    assert not Agent.objects.filter(name="Form").exists()


def test_an_unknown_method_answers_405_json(alice):
    _error(alice.client().put("/api/v1/business/", {}, format="json"), 405, "method_not_allowed")


THROTTLED = {
    **settings.REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"principal": "3/min", "anon": "3/min"},
}


@override_settings(REST_FRAMEWORK=THROTTLED)
def test_the_fourth_request_in_a_minute_is_throttled(alice, bob):
    client = alice.client()
    statuses = [client.get(AGENTS).status_code for _ in range(3)]

    response = client.get(AGENTS)

    assert statuses == [200, 200, 200]
    _error(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    # Buckets are per key: Bob is not slowed down by Alice.
    assert bob.client().get(AGENTS).status_code == 200


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.com"])
def test_a_cors_preflight_from_an_allowed_origin_is_answered(db, anon_client):
    response = anon_client.options(
        AGENTS,
        HTTP_ORIGIN="https://app.example.com",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )

    assert response.status_code == 200
    assert response["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in response["access-control-allow-headers"]


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.com"])
def test_a_cors_preflight_from_another_origin_gets_no_allow_header(db, anon_client):
    response = anon_client.options(
        AGENTS, HTTP_ORIGIN="https://evil.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )

    assert "access-control-allow-origin" not in response


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.com"])
def test_an_allowed_origin_can_read_a_real_response(alice):
    response = alice.client().get(AGENTS, HTTP_ORIGIN="https://app.example.com")

    assert response.status_code == 200
    assert response["access-control-allow-origin"] == "https://app.example.com"


MY_PATHS = [
    "/api/v1/auth/check/",
    "/api/v1/business/",
    "/api/v1/business/ai-settings/",
    "/api/v1/businesses/",
    "/api/v1/businesses/{id}/",
    "/api/v1/businesses/{id}/verify-owner/",
    "/api/v1/api-keys/",
    "/api/v1/api-keys/{id}/",
    "/api/v1/api-keys/{id}/revoke/",
    "/api/v1/agents/",
    "/api/v1/agents/{id}/",
]


def test_the_openapi_schema_describes_every_route_here(db, anon_client):
    response = anon_client.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    missing = [p for p in MY_PATHS if p not in paths]
    assert not missing
    # Ids are UUIDs, and error answers are documented.
    id_param = next(p for p in paths["/api/v1/agents/{id}/"]["get"]["parameters"] if p["name"] == "id")
    assert id_param["schema"] == {"type": "string", "format": "uuid"}
    assert "404" in paths["/api/v1/agents/{id}/"]["patch"]["responses"]
    assert "400" in paths["/api/v1/businesses/"]["post"]["responses"]
    created = schema["components"]["schemas"]["PlatformBusinessCreated"]["properties"]
    assert "api_key" in created
    assert "key" in schema["components"]["schemas"]["APIKeyCreated"]["properties"]
    assert "key" not in schema["components"]["schemas"]["APIKey"]["properties"]


def test_a_malformed_cursor_is_bad_input_not_a_missing_page(alice):
    response = alice.client().get("/api/v1/agents/", {"cursor": "__main__"})
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"cursor": ["Invalid cursor."]}


def test_every_operation_documents_the_error_shape(anon_client):
    schema = anon_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code in ("400", "401", "403", "404", "429"):
                assert code in operation["responses"], (method, path, code)
