"""What an LLM request cost, from the per-model price table in settings."""

from __future__ import annotations

import re
from decimal import Decimal

from django.conf import settings

MILLION = Decimal(1_000_000)
COST_PLACES = Decimal("0.000001")  # LLMCall.cost has six decimal places
# Providers answer with dated snapshots ("gpt-4o-mini-2024-07-18") of the model asked for.
_SNAPSHOT_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def llm_prices(*, model: str) -> tuple[Decimal, Decimal, Decimal] | None:
    """(prompt, cached prompt, completion) USD per 1M tokens, or None for an unknown model."""
    prices = settings.LLM_PRICES
    found = prices.get(model) or prices.get(_SNAPSHOT_SUFFIX.sub("", model))
    if found is None:
        return None
    prompt, cached, completion = (Decimal(str(p)) for p in found)
    return prompt, cached, completion


def llm_cost(
    *, model: str, prompt_tokens: int | None, completion_tokens: int | None, cached_tokens: int | None
) -> Decimal | None:
    """USD cost of one request. None (not zero) when the model's price or the usage is unknown.

    Cached prompt tokens are part of prompt_tokens and billed at the cached rate.
    """
    prices = llm_prices(model=model)
    if prices is None or (prompt_tokens is None and completion_tokens is None):
        return None
    prompt_price, cached_price, completion_price = prices
    prompt = prompt_tokens or 0
    cached = min(cached_tokens or 0, prompt)
    total = (
        (prompt - cached) * prompt_price + cached * cached_price + (completion_tokens or 0) * completion_price
    )
    return (total / MILLION).quantize(COST_PLACES)
