"""The LLM client against the fake OpenAI-compatible server, over real HTTP."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.test import override_settings

from conversations.llm.client import LLMRequest, llm_base_url_host, llm_complete, llm_configured
from conversations.llm.errors import LLMError
from conversations.llm.pricing import llm_cost
from tests.fakes.openai_server import Reply

SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "data_extraction",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": ["string", "null"]}},
            "required": ["name"],
            "additionalProperties": False,
        },
    },
}


def request(**kwargs) -> LLMRequest:
    defaults = {"messages": [{"role": "user", "content": "Hello"}], "model": "gpt-4o-mini"}
    return LLMRequest(**{**defaults, **kwargs})


def test_a_completion_returns_text_usage_and_latency(fake):
    fake.cached_tokens = 3
    fake.queue(Reply(content="Hi there"))

    result = llm_complete(request(temperature=0.2, max_tokens=50))

    assert result.text == "Hi there"
    assert result.json is None  # no structured output was asked for
    assert result.prompt_tokens > 0
    assert result.completion_tokens > 0
    assert result.cached_tokens == 3
    assert result.latency_ms >= 0
    assert result.model == "gpt-4o-mini"
    body = fake.bodies()[0]
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.2
    # A compatible server (a base URL is set) gets the max_tokens every server knows.
    assert body["max_tokens"] == 50


def test_structured_output_is_sent_and_parsed(fake):
    fake.queue(Reply(json_content={"name": "Ana"}))

    result = llm_complete(request(response_format=SCHEMA_FORMAT))

    assert result.json == {"name": "Ana"}
    assert fake.bodies()[0]["response_format"] == SCHEMA_FORMAT


def test_the_default_answer_follows_the_requested_schema(fake):
    result = llm_complete(request(response_format=SCHEMA_FORMAT))

    assert result.json == {"name": None}


def test_json_in_a_code_fence_is_still_parsed(fake):
    fake.queue(Reply(content='```json\n{"name": "Ana"}\n```'))

    assert llm_complete(request(response_format=SCHEMA_FORMAT)).json == {"name": "Ana"}


def test_content_that_is_not_json_parses_to_none(fake):
    fake.queue(Reply(content="Sure! The name is Ana."))

    result = llm_complete(request(response_format=SCHEMA_FORMAT))

    assert result.json is None
    assert result.text == "Sure! The name is Ana."


def test_server_errors_are_transient_after_the_sdk_retries(fake):
    fake.responder("response", lambda body: Reply.error(500))

    with pytest.raises(LLMError) as caught:
        llm_complete(request())

    assert caught.value.transient is True
    assert caught.value.status_code == 500
    # The SDK is the one retry layer: the first attempt and two retries.
    assert len(fake.requests) == 3


def test_rate_limits_wait_for_retry_after_then_succeed(fake):
    fake.queue(Reply.rate_limited(retry_after=0.6), Reply(content="Now it works"))

    started = time.monotonic()
    result = llm_complete(request())
    elapsed = time.monotonic() - started

    assert result.text == "Now it works"
    assert len(fake.requests) == 2
    assert elapsed >= 0.6  # the SDK's own backoff would start at 0.5 s less jitter


def test_rate_limits_that_last_are_transient(fake):
    fake.responder("response", lambda body: Reply.rate_limited(retry_after=0.05))

    with pytest.raises(LLMError) as caught:
        llm_complete(request())

    assert caught.value.transient is True
    assert caught.value.status_code == 429


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_permanent_and_not_retried(fake, status):
    fake.responder("response", lambda body: Reply.error(status, message="bad request: unknown model"))

    with pytest.raises(LLMError) as caught:
        llm_complete(request())

    assert caught.value.transient is False
    assert caught.value.status_code == status
    assert "unknown model" in caught.value.message
    assert len(fake.requests) == 1


@override_settings(LLM_TIMEOUT_SECONDS=0.3, LLM_MAX_RETRIES=1)
def test_a_timeout_is_transient(fake):
    fake.responder("response", lambda body: Reply.slow(3, content="too late"))

    started = time.monotonic()
    with pytest.raises(LLMError) as caught:
        llm_complete(request())

    assert caught.value.transient is True
    assert "timed out" in caught.value.message
    assert caught.value.latency_ms >= 300
    assert time.monotonic() - started < 2.5  # the client gave up; it did not wait for the server
    assert len(fake.requests) == 2  # retried once, as configured


def test_a_malformed_response_body_is_a_transient_error(fake):
    fake.queue(Reply.malformed_body())

    with pytest.raises(LLMError) as caught:
        llm_complete(request())

    assert caught.value.transient is True
    assert "malformed" in caught.value.message


def test_a_body_without_choices_is_a_transient_error(fake):
    fake.queue(Reply(raw_body=b'{"id": "x", "object": "chat.completion", "choices": []}'))

    with pytest.raises(LLMError) as caught:
        llm_complete(request())

    assert caught.value.transient is True


def test_missing_usage_is_tolerated(fake):
    fake.queue(Reply(content="no usage", usage=None))

    result = llm_complete(request())

    assert result.text == "no usage"
    assert (result.prompt_tokens, result.completion_tokens, result.cached_tokens) == (None, None, None)


def test_missing_usage_details_are_tolerated(fake):
    fake.queue(Reply(content="partial usage", usage={"prompt_tokens": 12}))

    result = llm_complete(request())

    assert result.prompt_tokens == 12
    assert result.completion_tokens is None
    assert result.cached_tokens is None


def test_an_unreachable_server_is_a_transient_error(settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    settings.OPENAI_API_KEY = "test"
    settings.LLM_MAX_RETRIES = 0

    with pytest.raises(LLMError) as caught:
        llm_complete(request())

    assert caught.value.transient is True


def test_llm_is_configured_by_a_key_or_a_base_url(settings):
    settings.OPENAI_API_KEY = ""
    settings.OPENAI_BASE_URL = ""
    assert llm_configured() is False
    settings.OPENAI_BASE_URL = "http://localhost:11434/v1"  # a keyless local server
    assert llm_configured() is True
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = "sk-test"
    assert llm_configured() is True


def test_the_base_url_host_never_carries_credentials_or_paths(settings):
    settings.OPENAI_BASE_URL = "https://user:sk-secret@llm.example.com:8443/v1?key=sk-secret"
    assert llm_base_url_host() == "llm.example.com:8443"
    settings.OPENAI_BASE_URL = ""
    assert llm_base_url_host() == "api.openai.com"


def test_cost_bills_cached_prompt_tokens_at_the_cached_rate(settings):
    settings.LLM_PRICES = {"m": (Decimal("2.00"), Decimal("0.50"), Decimal("8.00"))}

    cost = llm_cost(model="m", prompt_tokens=1_000_000, completion_tokens=500_000, cached_tokens=400_000)

    # 600k uncached at 2.00 + 400k cached at 0.50 + 500k completion at 8.00 per million.
    assert cost == Decimal("1.2") + Decimal("0.2") + Decimal("4.0")


def test_cost_of_a_dated_snapshot_uses_its_model_price():
    cost = llm_cost(
        model="gpt-4o-mini-2024-07-18", prompt_tokens=1000, completion_tokens=100, cached_tokens=None
    )

    assert cost == Decimal("0.000210")


def test_an_unknown_model_costs_null_not_zero():
    assert llm_cost(model="my-local-llama", prompt_tokens=1000, completion_tokens=10, cached_tokens=0) is None


def test_unknown_usage_costs_null():
    assert (
        llm_cost(model="gpt-4o-mini", prompt_tokens=None, completion_tokens=None, cached_tokens=None) is None
    )
