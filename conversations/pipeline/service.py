"""`turn_run`: one AI turn for a conversation's pending messages, persisted.

It reads the context, checks the budgets, runs the LLM calls, writes every
call to the ledger, and updates the conversation's stage, collected data (with
per-key sources) and AI turn count. It creates no outbound message and sends
nothing: the caller stores and sends `TurnResult.reply_text`, and hands the
conversation to staff when `handoff_reason` is set or `LLMUnavailable` is raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from conversations.llm.client import llm_complete, llm_configured
from conversations.llm.errors import LLMUnavailable
from conversations.llm.gate import llm_gated
from conversations.llm.ledger import llm_call_build, llm_calls_save
from conversations.models import Conversation, LLMCall, Message
from conversations.pipeline.budget import turn_budget_exceeded
from conversations.pipeline.context import TurnContext
from conversations.pipeline.context_reader import turn_context_build
from conversations.pipeline.turn import TurnDraft, collected_merge, turn_draft
from icmp.db import connections_release
from stages.models import Stage

logger = logging.getLogger(__name__)

NO_LLM_REASON = "AI replies are off: no LLM is configured"


@dataclass
class TurnResult:
    reply_text: str | None = None
    quick_replies: list[str] = field(default_factory=list)
    stage: Stage | None = None
    stage_changed: bool = False
    # The collected-data keys this turn set or changed, with their new values.
    extracted: dict[str, Any] = field(default_factory=dict)
    # Set when the conversation must go to staff (the reply, if any, is still returned).
    handoff_reason: str | None = None
    llm_call_ids: list[Any] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # None when any call's cost is unknown (a model missing from LLM_PRICES).
    cost: Decimal | None = None


def turn_totals(calls: list[LLMCall]) -> tuple[int, int, Decimal | None]:
    prompt = sum(c.prompt_tokens or 0 for c in calls)
    completion = sum(c.completion_tokens or 0 for c in calls)
    # Calls that reported no usage (failed requests) are not billed; any other call
    # without a price makes the total unknown rather than wrongly low.
    billed = [c for c in calls if c.prompt_tokens is not None or c.completion_tokens is not None]
    if not billed or any(c.cost is None for c in billed):
        return prompt, completion, None
    return prompt, completion, sum((c.cost for c in billed), Decimal(0))


def draft_ledger_write(ctx: TurnContext, draft: TurnDraft, *, dry_run: bool) -> list[LLMCall]:
    rows = [
        llm_call_build(
            business_id=ctx.business_id,
            conversation_id=ctx.conversation_id,
            message_id=ctx.trigger_message_id,
            stage_id=record.stage.id if record.stage else None,
            template_id=record.template_id,
            template_version=record.template_version,
            purpose=record.purpose,
            request=record.request,
            result=record.result,
            error=record.error,
            outcome=record.outcome,
            problem=record.problem,
            dry_run=dry_run,
        )
        for record in draft.calls
    ]
    return llm_calls_save(calls=rows)


def _conversation_apply(
    *, conversation: Conversation, ctx: TurnContext, draft: TurnDraft, stage: Stage | None
) -> dict[str, Any]:
    """Merge the extracted data (with sources), move the stage, count the turn. Returns what changed."""
    now = timezone.now()
    with transaction.atomic():
        # Read-merge-write under a row lock: a staff edit of the collected data is not lost.
        locked = (
            Conversation.objects.select_for_update()
            .only("id", "collected_data", "collected_data_sources", "ai_turns")
            .get(pk=conversation.pk)
        )
        merged, changed = collected_merge(locked.collected_data or {}, draft.extracted)
        sources = dict(locked.collected_data_sources or {})
        source_id = str(ctx.trigger_message_id) if ctx.trigger_message_id else None
        for key in changed:
            sources[key] = {"message_id": source_id, "at": now.isoformat()}
        updates: dict[str, Any] = {
            "collected_data": merged,
            "collected_data_sources": sources,
            "ai_turns": F("ai_turns") + 1,
            "updated_at": now,
        }
        if stage is not None:
            updates["stage"] = stage
        Conversation.objects.filter(pk=conversation.pk).update(**updates)

    conversation.collected_data = merged
    conversation.collected_data_sources = sources
    conversation.ai_turns = locked.ai_turns + 1
    conversation.updated_at = now
    if stage is not None:
        conversation.stage = stage
    return {key: merged[key] for key in changed}


def turn_run(*, conversation: Conversation, messages: list[Message], dry_run: bool = False) -> TurnResult:
    """Answer `messages` (the conversation's pending inbound messages, a burst as a whole).

    - No LLM configured, or a budget exhausted → no model call; `handoff_reason` says why.
    - A required call (stage selection or the reply) fails after the SDK's retries →
      `LLMUnavailable`, raised after every call of the turn is in the ledger. Do not
      call this inside a transaction that the exception escapes, or the ledger rows
      roll back with it. The conversation is left as it was.
    - `dry_run` calls the model and writes the ledger (flagged dry_run) but leaves the
      conversation untouched.
    """
    if not llm_configured():
        return TurnResult(stage=conversation.stage, handoff_reason=NO_LLM_REASON)

    ctx = turn_context_build(conversation=conversation, messages=messages)
    current = ctx.stage_models.get(ctx.current_stage.id) if ctx.current_stage else None
    log_extra = {"business": str(ctx.business_id), "conversation": str(ctx.conversation_id)}

    reason = turn_budget_exceeded(budget=ctx.budget)
    if reason is not None:
        logger.info("Turn not run: %s", reason, extra=log_extra)
        return TurnResult(stage=current, handoff_reason=reason)

    # The LLM round trips hold no database connection: it goes back to the pool first.
    connections_release()
    draft = turn_draft(ctx=ctx, llm=llm_gated(llm_complete))
    calls = draft_ledger_write(ctx, draft, dry_run=dry_run)
    call_ids = [c.id for c in calls]

    if draft.failure is not None:
        failed = draft.failed_purpose or "turn"
        logger.warning("Turn failed at %s: %s", failed, draft.failure, extra=log_extra)
        raise LLMUnavailable(
            f"The LLM failed during {failed}: {draft.failure}",
            transient=draft.failure.transient,
            llm_call_ids=call_ids,
        )

    stage = ctx.stage_models.get(draft.stage.id) if draft.stage else None
    if dry_run:
        _, changed = collected_merge(ctx.collected_data, draft.extracted)
        extracted = {k: draft.extracted[k] for k in changed}
    else:
        extracted = _conversation_apply(conversation=conversation, ctx=ctx, draft=draft, stage=stage)

    prompt_tokens, completion_tokens, cost = turn_totals(calls)
    logger.info(
        "Turn done: stage %s%s, %d calls, %d+%d tokens",
        draft.stage.key if draft.stage else "-",
        " (changed)" if draft.stage_changed else "",
        len(calls),
        prompt_tokens,
        completion_tokens,
        extra=log_extra,
    )
    return TurnResult(
        reply_text=draft.reply_text,
        quick_replies=draft.quick_replies,
        stage=stage,
        stage_changed=draft.stage_changed,
        extracted=extracted,
        handoff_reason=draft.handoff_reason,
        llm_call_ids=call_ids,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
    )
