"""The LLMCall ledger: one row per LLM request, successful or not."""

from __future__ import annotations

from typing import Any

from conversations.llm.client import LLMRequest, LLMResult, llm_base_url_host
from conversations.llm.errors import LLMError
from conversations.llm.pricing import llm_cost, llm_prices
from conversations.models import LLMCall, LLMOutcome

MAX_ERROR_CHARS = 4000


def _cost_model(request: LLMRequest, result: LLMResult | None) -> str:
    # Price what we asked for; fall back to the name the server answered with
    # (a proxy may map an alias to a model we know).
    if result is not None and llm_prices(model=request.model) is None and llm_prices(model=result.model):
        return result.model
    return request.model


def llm_call_build(
    *,
    business_id: Any,
    purpose: str,
    request: LLMRequest,
    result: LLMResult | None,
    error: LLMError | None = None,
    outcome: str | None = None,
    problem: str = "",
    conversation_id: Any = None,
    message_id: Any = None,
    stage_id: Any = None,
    template_id: Any = None,
    template_version: int | None = None,
    dry_run: bool = False,
) -> LLMCall:
    """An unsaved LLMCall for one request. `outcome` defaults to ok, or error when `error` is given.

    The row records the provider's host, never its key; prompts are kept here
    (not in logs) so the retention command can prune them.
    """
    if outcome is None:
        outcome = LLMOutcome.ERROR if error is not None else LLMOutcome.OK
    call = LLMCall(
        business_id=business_id,
        conversation_id=conversation_id,
        message_id=message_id,
        stage_id=stage_id,
        template_id=template_id,
        template_version=template_version,
        purpose=purpose,
        model=request.model[:100],
        base_url_host=llm_base_url_host()[:255],
        request_messages=request.messages,
        outcome=outcome,
        error=(problem or (str(error) if error else ""))[:MAX_ERROR_CHARS],
        dry_run=dry_run,
    )
    if result is not None:
        call.response_text = result.text
        call.response_json = result.json
        call.prompt_tokens = result.prompt_tokens
        call.completion_tokens = result.completion_tokens
        call.cached_tokens = result.cached_tokens
        call.latency_ms = result.latency_ms
        call.cost = llm_cost(
            model=_cost_model(request, result),
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cached_tokens=result.cached_tokens,
        )
    elif error is not None:
        call.latency_ms = error.latency_ms
    return call


def llm_calls_save(*, calls: list[LLMCall]) -> list[LLMCall]:
    """Insert the rows in one query. Call it outside any transaction a failure would roll back:
    a failed request must stay in the ledger."""
    return LLMCall.objects.bulk_create(calls)
