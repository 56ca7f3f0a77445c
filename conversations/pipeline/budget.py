"""AI control budgets: tokens per business per month, AI turns per conversation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from conversations.models import LLMCall
from conversations.pipeline.context import BudgetInfo


def month_start(now: datetime | None = None) -> datetime:
    """Midnight on the first day of the current month, in the project's time zone."""
    local = timezone.localtime(now or timezone.now())
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def business_tokens_this_month(*, business_id: Any) -> int:
    """Prompt plus completion tokens of the business's LLM calls this calendar month: one query.

    Dry runs count too: the provider bills them all the same.
    """
    total = LLMCall.objects.filter(business_id=business_id, created_at__gte=month_start()).aggregate(
        tokens=Sum(Coalesce(F("prompt_tokens"), 0) + Coalesce(F("completion_tokens"), 0))
    )["tokens"]
    return int(total or 0)


def turn_budget_exceeded(*, business_id: Any, budget: BudgetInfo) -> str | None:
    """Why the turn must not call the model (the handoff reason), or None when within budget."""
    cap = budget.max_turns_per_conversation
    if cap is not None and budget.ai_turns >= cap:
        return f"turn budget exceeded: this conversation reached its cap of {cap} AI turns"
    monthly = budget.monthly_token_budget
    if monthly is not None:
        used = business_tokens_this_month(business_id=business_id)
        if used >= monthly:
            return f"token budget exceeded: {used} of {monthly} tokens used this month"
    return None
