"""AI control budgets: tokens per business per month, AI turns per conversation.

Pure: the context reader has already counted what was used (BudgetInfo).
"""

from __future__ import annotations

from conversations.pipeline.context import BudgetInfo


def turn_budget_exceeded(*, budget: BudgetInfo) -> str | None:
    """Why the turn must not call the model (the handoff reason), or None when within budget."""
    cap = budget.max_turns_per_conversation
    if cap is not None and budget.ai_turns >= cap:
        return f"turn budget exceeded: this conversation reached its cap of {cap} AI turns"
    monthly = budget.monthly_token_budget
    if monthly is not None and budget.tokens_used_this_month >= monthly:
        return f"token budget exceeded: {budget.tokens_used_this_month} of {monthly} tokens used this month"
    return None
