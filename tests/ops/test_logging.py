"""Request ids on responses and log lines; secrets scrubbed from every log line.

Log output is captured through a handler built from settings.LOGGING itself
(the console handler's formatter and filters), so a change there is tested.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
import re

import pytest
from django.conf import settings
from django.db import OperationalError
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from icmp import health
from icmp.observability import RedactSecretsFilter, RequestIdFilter

GENERATED_ID = re.compile(r"^[0-9a-f]{32}$")
AUTH_CHECK = "/api/v1/auth/check/"


class JsonLog:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def find(self, text: str) -> dict:
        matches = [line for line in self.lines() if text in line["message"]]
        assert len(matches) == 1, self.stream.getvalue()
        return matches[0]


@pytest.fixture
def json_log():
    """The configured console handler's formatter and filters, writing to a buffer."""
    config = copy.deepcopy(settings.LOGGING)
    configurator = logging.config.DictConfigurator(config)
    console = config["handlers"]["console"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(configurator.configure_formatter(config["formatters"][console["formatter"]]))
    for name in console["filters"]:
        handler.addFilter(configurator.configure_filter(config["filters"][name]))
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield JsonLog(stream)
    root.removeHandler(handler)
    root.setLevel(previous_level)


# --- X-Request-ID --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/ping"), ("get", "/health"), ("get", "/no-such-page"), ("get", AUTH_CHECK), ("post", "/ping")],
)
def test_every_response_carries_a_request_id(method, path):
    response = getattr(Client(), method)(path)

    assert GENERATED_ID.match(response["X-Request-ID"])


def test_each_request_gets_its_own_id():
    client = Client()

    assert client.get("/ping")["X-Request-ID"] != client.get("/ping")["X-Request-ID"]


@pytest.mark.parametrize(
    "incoming", ["req-2026-01-01.abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "a" * 128]
)
def test_a_sane_incoming_request_id_is_echoed(incoming):
    response = Client().get("/ping", headers={"X-Request-ID": incoming})

    assert response["X-Request-ID"] == incoming


@pytest.mark.parametrize(
    "incoming",
    ["short", "a" * 129, "has spaces in it", "<script>alert(1)</script>", "id\u00e9nt-12345", "x;rm -rf /"],
)
def test_a_garbage_incoming_request_id_is_replaced(incoming):
    response = Client().get("/ping", headers={"X-Request-ID": incoming})

    assert GENERATED_ID.match(response["X-Request-ID"])


# --- request ids in log lines ----------------------------------------------------


@pytest.mark.django_db
def test_a_line_logged_inside_a_view_carries_the_request_id(json_log, monkeypatch):
    def down():
        raise OperationalError("down")

    monkeypatch.setattr(health, "_database", down)

    response = Client().get("/health", headers={"X-Request-ID": "probe-0001-health"})

    line = json_log.find("health check database failed")
    assert line["request_id"] == response["X-Request-ID"] == "probe-0001-health"
    assert (line["level"], line["logger"]) == ("WARNING", "icmp.health")


@pytest.mark.django_db
def test_djangos_own_lines_for_error_responses_carry_the_request_id(json_log):
    not_found = Client().get("/no-such-page")
    # Django logs a 401 after the middleware chain has returned.
    unauthorized = APIClient().get(AUTH_CHECK, HTTP_AUTHORIZATION="Api-Key icmp_000000000000.nope-nope-nope")

    assert json_log.find("Not Found: /no-such-page")["request_id"] == not_found["X-Request-ID"]
    assert json_log.find(f"Unauthorized: {AUTH_CHECK}")["request_id"] == unauthorized["X-Request-ID"]


def test_a_line_logged_outside_a_request_has_a_placeholder_id(json_log):
    logging.getLogger("icmp.test").info("background work")

    assert json_log.find("background work")["request_id"] == "-"


# --- redaction -------------------------------------------------------------------

SECRETS = {
    "business key header": (
        "Authorization: Api-Key icmp_0a1b2c3d4e5f.Zk3JqX9vQ2LmN8pR4tYw",
        "Zk3JqX9vQ2LmN8pR4tYw",
    ),
    "bare business key": ("key was icmp_0a1b2c3d4e5f.Zk3JqX9vQ2LmN8pR4tYw", "Zk3JqX9vQ2LmN8pR4tYw"),
    "bearer token": ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    "access_token query": ("GET /v25.0/me?access_token=EAAGm0PX4ZCpsBA&fields=id", "EAAGm0PX4ZCpsBA"),
    "app_secret json": ('{"name": "Shop", "app_secret": "9f8e7d6c5b4a39281706"}', "9f8e7d6c5b4a39281706"),
    "verify token query": ("/webhooks/whatsapp/?hub.verify_token=tok-583920&hub.challenge=1", "tok-583920"),
    "openai key": ("calling with sk-proj-AbCdEfGhIjKlMnOpQrSt1234", "AbCdEfGhIjKlMnOpQrSt1234"),
}


@pytest.mark.parametrize("case", sorted(SECRETS))
def test_secrets_in_a_message_are_scrubbed(json_log, case):
    text, secret = SECRETS[case]

    logging.getLogger("icmp.test").warning(text)

    output = json_log.stream.getvalue()
    assert secret not in output
    assert "[REDACTED]" in output


@pytest.mark.parametrize("case", sorted(SECRETS))
def test_secrets_in_format_arguments_and_extra_fields_are_scrubbed(json_log, case):
    text, secret = SECRETS[case]

    logging.getLogger("icmp.test").warning("upstream said %s", text, extra={"detail": text})

    line = json_log.find("upstream said")
    assert secret not in json.dumps(line)
    assert "[REDACTED]" in line["message"] and "[REDACTED]" in line["detail"]


def test_secrets_in_a_logged_traceback_are_scrubbed(json_log):
    try:
        raise RuntimeError("Graph API refused access_token=EAAGm0PX4ZCpsBA")
    except RuntimeError:
        logging.getLogger("icmp.test").exception("send failed")

    line = json_log.find("send failed")
    assert "EAAGm0PX4ZCpsBA" not in json.dumps(line)
    assert "RuntimeError" in line["exc_info"]


def test_a_request_passed_to_a_log_line_shows_no_query_secrets(json_log):
    request = RequestFactory().get(
        "/webhooks/whatsapp/", {"hub.verify_token": "tok-583920", "hub.challenge": "7"}
    )

    logging.getLogger("django.request").warning("Forbidden: %s", request.path, extra={"request": request})

    line = json_log.find("Forbidden: /webhooks/whatsapp/")
    assert "tok-583920" not in json.dumps(line)
    assert line["request"].startswith("GET /webhooks/whatsapp/?")


def test_ordinary_text_is_left_alone(json_log):
    logging.getLogger("icmp.test").info("message %s stored for business %s", "wamid.HBgL", "b-1")

    assert json_log.find("stored for business")["message"] == "message wamid.HBgL stored for business b-1"


def test_a_failed_auth_attempt_leaves_no_trace_of_the_key(alice, caplog, json_log):
    prefix = alice.raw_key.split(".")[0]
    guessed = [
        f"{prefix}.WrongSecretWrongSecretWrong",
        "icmp_ffffffffffff.UnknownPrefixSecret123",
        "sk-not-ours-but-secret",
    ]
    caplog.handler.addFilter(RequestIdFilter())
    caplog.handler.addFilter(RedactSecretsFilter())
    caplog.set_level(logging.DEBUG)

    statuses = []
    for scheme in ("Api-Key", "Bearer"):
        for key in guessed:
            response = APIClient().get(AUTH_CHECK, HTTP_AUTHORIZATION=f"{scheme} {key}")
            statuses.append(response.status_code)

    assert statuses == [401] * 6
    assert any("Unauthorized" in record.getMessage() for record in caplog.records)
    captured = caplog.text + json_log.stream.getvalue()
    captured += "".join(str(vars(record)) for record in caplog.records)
    for key in guessed:
        assert key.split(".")[-1] not in captured
