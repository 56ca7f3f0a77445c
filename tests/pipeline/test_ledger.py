"""The LLMCall ledger: one row per request, with usage, cost, template version and outcome."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.forms.models import model_to_dict

from conversations.llm.client import LLMRequest, LLMResult
from conversations.llm.errors import LLMError, LLMUnavailable
from conversations.llm.ledger import llm_call_build, llm_calls_save
from conversations.models import LLMCall, LLMOutcome
from conversations.pipeline.service import turn_run
from tests.fakes.openai_server import Reply


def turn_calls(bakery) -> list[LLMCall]:
    return list(
        LLMCall.objects.filter(conversation=bakery.conversation)
        .exclude(pk=bakery.tenant.llm_call.pk)
        .order_by("created_at", "id")
    )


def test_cached_prompt_tokens_are_recorded_and_billed_at_the_cached_rate(bakery, fake, settings):
    settings.LLM_PRICES = {"gpt-4o-mini": (Decimal("1.00"), Decimal("0.10"), Decimal("2.00"))}
    fake.cached_tokens = 100

    turn_run(conversation=bakery.conversation, messages=[bakery.say("Hi")])

    for call in turn_calls(bakery):
        assert call.cached_tokens == 100
        expected = (
            Decimal(call.prompt_tokens - 100) * Decimal("1.00")
            + 100 * Decimal("0.10")
            + Decimal(call.completion_tokens) * Decimal("2.00")
        ) / 1_000_000
        assert call.cost == expected.quantize(Decimal("0.000001"))


def test_an_unknown_model_records_null_cost_and_the_turn_cost_is_unknown(bakery, fake):
    agent = bakery.tenant.business.agents.get(is_default=True)
    agent.model = "llama-3.1-8b-instruct"
    agent.save()

    result = turn_run(conversation=bakery.conversation, messages=[bakery.say("Hi")])

    calls = turn_calls(bakery)
    assert calls and all(c.model == "llama-3.1-8b-instruct" for c in calls)
    assert all(c.cost is None for c in calls)
    assert all(c.prompt_tokens for c in calls)
    assert result.cost is None
    assert result.prompt_tokens == sum(c.prompt_tokens for c in calls)


def test_missing_usage_records_null_tokens_and_cost(bakery, fake):
    fake.on("selection", Reply(json_content={"stage": "general"}, usage=None))

    turn_run(conversation=bakery.conversation, messages=[bakery.say("Hi")])

    selection = next(c for c in turn_calls(bakery) if c.purpose == "selection")
    assert (selection.prompt_tokens, selection.completion_tokens, selection.cached_tokens) == (
        None,
        None,
        None,
    )
    assert selection.cost is None
    assert selection.outcome == LLMOutcome.OK


def test_a_failed_request_is_recorded_with_its_error_and_latency(bakery, fake):
    fake.responder("selection", lambda body: Reply.error(400, message="response_format is not supported"))
    message = bakery.say("Hi")

    with pytest.raises(LLMUnavailable):
        turn_run(conversation=bakery.conversation, messages=[message])

    (call,) = turn_calls(bakery)
    assert call.outcome == LLMOutcome.ERROR
    assert "permanent" in call.error and "response_format is not supported" in call.error
    assert call.latency_ms is not None
    assert call.prompt_tokens is None and call.cost is None
    assert call.request_messages[-1] == {"role": "user", "content": "Hi"}
    assert call.message_id == message.id
    assert call.stage_id == bakery.general.id


def test_the_ledger_never_stores_the_api_key(bakery, fake, settings):
    settings.OPENAI_API_KEY = "sk-proj-very-secret-key-1234567890"
    settings.OPENAI_BASE_URL = f"http://user:sk-proj-very-secret-key-1234567890@127.0.0.1:{fake.port}/v1"

    turn_run(conversation=bakery.conversation, messages=[bakery.say("Hi")])

    calls = turn_calls(bakery)
    assert calls
    for call in calls:
        assert call.base_url_host == f"127.0.0.1:{fake.port}"
        assert "very-secret" not in json.dumps(model_to_dict(call), default=str)


def test_the_template_version_is_the_one_used_at_the_time(bakery, fake, platform_templates):
    template = platform_templates["response_generation"]
    template.content += "\nAlways sign as Bella."
    template.version += 1
    template.save()

    turn_run(conversation=bakery.conversation, messages=[bakery.say("Hi")])
    template.version += 1
    template.save()

    reply = next(c for c in turn_calls(bakery) if c.purpose == "response")
    assert reply.template_id == template.id
    assert reply.template_version == template.version - 1
    assert "Always sign as Bella." in reply.request_messages[0]["content"]


def test_responses_are_kept_as_text_and_json(bakery, fake):
    fake.on("response", {"reply": "Hello!", "quick_replies": ["Menu"]})

    turn_run(conversation=bakery.conversation, messages=[bakery.say("Hi")])

    reply = next(c for c in turn_calls(bakery) if c.purpose == "response")
    assert reply.response_json == {"reply": "Hello!", "quick_replies": ["Menu"]}
    assert json.loads(reply.response_text) == reply.response_json


def test_a_call_can_be_recorded_outside_a_turn(alice):
    request = LLMRequest(messages=[{"role": "user", "content": "ping"}], model="gpt-4o-mini")
    ok = llm_call_build(
        business_id=alice.business.id,
        purpose="response",
        request=request,
        result=LLMResult(
            text="pong",
            json=None,
            prompt_tokens=1000,
            completion_tokens=1000,
            cached_tokens=None,
            latency_ms=42,
            model="gpt-4o-mini-2024-07-18",
        ),
        dry_run=True,
    )
    failed = llm_call_build(
        business_id=alice.business.id,
        purpose="response",
        request=request,
        result=None,
        error=LLMError("the request timed out", transient=True, latency_ms=45000),
    )

    saved = llm_calls_save(calls=[ok, failed])

    assert LLMCall.objects.filter(pk__in=[c.pk for c in saved]).count() == 2
    ok.refresh_from_db()
    assert ok.outcome == LLMOutcome.OK
    assert ok.cost == Decimal("0.000750")
    assert ok.base_url_host == "api.openai.com"
    assert ok.dry_run is True
    failed.refresh_from_db()
    assert failed.outcome == LLMOutcome.ERROR
    assert failed.latency_ms == 45000
    assert "timed out" in failed.error
