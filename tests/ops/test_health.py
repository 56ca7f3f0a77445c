"""Liveness (/ping) and readiness (/health)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.db import OperationalError
from django.test import Client, override_settings

from icmp import health
from tests.conftest import INTERNAL_KEY, MASTER_KEY

CHECKS = {"database", "cache", "broker", "migrations", "llm"}
# The details of /health are for operators: the platform key as a bearer token.
OPERATOR = {"Authorization": f"Bearer {INTERNAL_KEY}"}


def test_ping_answers_pong_without_touching_the_database():
    response = Client().get("/ping")

    assert response.status_code == 200
    assert response.content == b"pong"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_health_reports_every_check_as_json_to_an_operator():
    response = Client().get("/health", headers=OPERATOR)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
    for name, check in body["checks"].items():
        assert check["ok"] is True, name
        assert isinstance(check["latency_ms"], float)
    assert body["checks"]["migrations"]["pending"] == 0
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_health_says_the_llm_is_not_configured_by_default():
    llm = Client().get("/health", headers=OPERATOR).json()["checks"]["llm"]

    assert llm["configured"] is False
    assert llm["model"] is None
    assert "AI replies are off" in llm["note"]


@pytest.mark.django_db
@pytest.mark.parametrize("setting", ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
def test_health_says_the_llm_is_configured_with_a_key_or_a_base_url(setting):
    with override_settings(**{setting: "x"}, LLM_MODEL="gpt-4.1-mini"):
        response = Client().get("/health", headers=OPERATOR)

    llm = response.json()["checks"]["llm"]
    assert response.status_code == 200
    assert (llm["configured"], llm["model"], llm["note"]) == (True, "gpt-4.1-mini", None)


def _raise(exc: Exception):
    def check():
        raise exc

    return check


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_health_answers_503_json_when_any_check_raises(monkeypatch, name):
    secret = "postgres://icmp:hunter2@db.internal:5432/icmp"
    monkeypatch.setattr(health, f"_{name}", _raise(OperationalError(f"could not connect to {secret}")))

    response = Client().get("/health", headers=OPERATOR)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"][name] == {
        "ok": False,
        "error": "OperationalError",
        "latency_ms": body["checks"][name]["latency_ms"],
    }
    assert all(check["ok"] for other, check in body["checks"].items() if other != name)
    assert "hunter2" not in response.content.decode()


@pytest.mark.django_db
def test_health_answers_503_when_the_cache_loses_what_was_written(monkeypatch):
    class ForgetfulCache:
        def set(self, *args, **kwargs):
            pass

        def get(self, *args, **kwargs):
            return None

        def delete(self, *args, **kwargs):
            pass

    monkeypatch.setattr(health, "cache", ForgetfulCache())

    response = Client().get("/health", headers=OPERATOR)

    assert response.status_code == 503
    assert response.json()["checks"]["cache"]["ok"] is False


@pytest.mark.django_db
def test_health_answers_head_for_load_balancers_and_refuses_post():
    client = Client()

    assert client.head("/health").status_code == 200
    assert client.head("/ping").status_code == 200
    assert client.post("/health").status_code == 405


@pytest.mark.django_db
def test_health_reports_pending_migrations(monkeypatch):
    class Executor:
        def __init__(self, connection):
            self.loader = SimpleNamespace(graph=SimpleNamespace(leaf_nodes=lambda: []))

        def migration_plan(self, targets):
            return [("conversations", "0002_new"), ("stages", "0002_new")]

    monkeypatch.setattr(health, "_migrations_applied", False)
    monkeypatch.setattr(health, "MigrationExecutor", Executor)

    response = Client().get("/health", headers=OPERATOR)

    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == {
        "ok": False,
        "pending": 2,
        "latency_ms": response.json()["checks"]["migrations"]["latency_ms"],
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-key"},
        {"Authorization": f"Basic {INTERNAL_KEY}"},
        {"Authorization": f"Bearer {INTERNAL_KEY}x"},
    ],
)
def test_health_without_a_platform_key_says_only_ok(headers):
    response = Client().get("/health", headers=headers)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_health_without_a_platform_key_says_only_unavailable_when_a_check_fails(monkeypatch):
    monkeypatch.setattr(health, "_database", _raise(OperationalError("could not connect to db.internal")))

    response = Client().get("/health")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_health_hides_details_from_a_business_key(alice):
    response = Client().get("/health", headers={"Authorization": f"Bearer {alice.raw_key}"})

    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header", [f"Bearer {INTERNAL_KEY}", f"Bearer {MASTER_KEY}", f"Api-Key {INTERNAL_KEY}"]
)
def test_health_shows_details_to_a_platform_key(header):
    body = Client().get("/health", headers={"Authorization": header}).json()

    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECKS
