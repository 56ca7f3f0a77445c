"""One AI turn for a conversation's pending messages: think (read, call the model), then apply.

`turn_think` reads the context, checks the budgets and runs the LLM calls; it
writes nothing unless a required call fails, when it writes that turn's ledger
rows and raises `LLMUnavailable`. `turn_apply` persists a plan inside the
caller's transaction: the ledger rows, then the conversation's stage,
collected data (with per-key sources) and AI turn count, in one UPDATE that
also takes the row lock and reads back what the merge needs (a staff edit of
the collected data is never lost). The turn (conversations/turns.py) stores
the reply and the messages' statuses in that same transaction; `turn_run`
does both steps for callers that need no reply.

No reply is created or sent here: the caller stores and sends
`TurnResult.reply_text`, and hands the conversation to staff when
`handoff_reason` is set or `LLMUnavailable` is raised.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, F, JSONField, Q, Value, When
from django.utils import timezone

from conversations.llm.client import llm_complete, llm_configured
from conversations.llm.errors import LLMUnavailable
from conversations.llm.gate import llm_gated
from conversations.llm.ledger import llm_call_build, llm_calls_save
from conversations.models import Conversation, LLMCall, Message
from conversations.pipeline.budget import turn_budget_exceeded
from conversations.pipeline.context import TurnContext
from conversations.pipeline.context_reader import TurnConfig, turn_context_build, turn_conversation_get
from conversations.pipeline.turn import TurnDraft, collected_merge, turn_draft
from icmp.db import connections_release
from icmp.returning import update_returning
from stages.models import Stage

logger = logging.getLogger(__name__)

NO_LLM_REASON = "AI replies are off: no LLM is configured"
# What `turn_apply` reads back with its UPDATE of the conversation.
_APPLIED_FIELDS = (
    "ai_mode",
    "ai_turns",
    "collected_data",
    "collected_data_sources",
    "turn_lease_until",
    "turn_lease_token",
)


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


def draft_ledger_rows(ctx: TurnContext, draft: TurnDraft, *, dry_run: bool) -> list[LLMCall]:
    """The draft's calls as unsaved ledger rows (`llm_calls_save` writes them in one INSERT)."""
    return [
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


def draft_ledger_write(ctx: TurnContext, draft: TurnDraft, *, dry_run: bool) -> list[LLMCall]:
    return llm_calls_save(calls=draft_ledger_rows(ctx, draft, dry_run=dry_run))


@dataclass
class TurnPlan:
    """What a turn decided, nothing written yet (`turn_think`).

    `refused` is set (a handoff reason) when no model was called: no LLM, or a budget spent.
    """

    current: Stage | None
    ctx: TurnContext | None = None
    draft: TurnDraft | None = None
    calls: list[LLMCall] = field(default_factory=list)  # unsaved ledger rows
    refused: str | None = None
    # The collected data's sources as the turn read them (the data itself is in `ctx`).
    sources_read: dict[str, Any] = field(default_factory=dict)
    # Set once the transaction that applied the plan has committed (its ledger rows with it).
    committed: bool = False

    @property
    def stage(self) -> Stage | None:
        draft, ctx = self.draft, self.ctx
        return ctx.stage_models.get(draft.stage.id) if draft and ctx and draft.stage else None

    def result(self, *, extracted: dict[str, Any] | None = None) -> TurnResult:
        if self.refused is not None or self.draft is None:
            return TurnResult(stage=self.current, handoff_reason=self.refused)
        draft = self.draft
        prompt_tokens, completion_tokens, cost = turn_totals(self.calls)
        return TurnResult(
            reply_text=draft.reply_text,
            quick_replies=draft.quick_replies,
            stage=self.stage,
            stage_changed=draft.stage_changed,
            extracted=extracted or {},
            handoff_reason=draft.handoff_reason,
            llm_call_ids=[c.id for c in self.calls],
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=cost,
        )


def turn_think(
    *,
    conversation: Conversation,
    messages: list[Message],
    config: TurnConfig | None = None,
    dry_run: bool = False,
) -> TurnPlan:
    """Read the context, check the budgets, run the LLM calls: the plan of a turn.

    - No LLM configured, or a budget exhausted → no model call; `refused` says why.
    - A required call (stage selection or the reply) fails after the SDK's retries →
      the turn's ledger rows are written (their own transaction: call this outside one)
      and `LLMUnavailable` is raised. The conversation is left as it was.
    The database connection is given back before the first LLM request.
    """
    if not llm_configured():
        return TurnPlan(current=conversation.stage, refused=NO_LLM_REASON)

    ctx = turn_context_build(conversation=conversation, messages=messages, config=config)
    current = ctx.stage_models.get(ctx.current_stage.id) if ctx.current_stage else None
    log_extra = {"business": str(ctx.business_id), "conversation": str(ctx.conversation_id)}

    reason = turn_budget_exceeded(budget=ctx.budget)
    if reason is not None:
        logger.info("Turn not run: %s", reason, extra=log_extra)
        return TurnPlan(current=current, ctx=ctx, refused=reason)

    # The LLM round trips hold no database connection: it goes back to the pool first.
    connections_release()
    draft = turn_draft(ctx=ctx, llm=llm_gated(llm_complete))
    calls = draft_ledger_rows(ctx, draft, dry_run=dry_run)
    if draft.failure is not None:
        calls = llm_calls_save(calls=calls)
        failed = draft.failed_purpose or "turn"
        logger.warning("Turn failed at %s: %s", failed, draft.failure, extra=log_extra)
        raise LLMUnavailable(
            f"The LLM failed during {failed}: {draft.failure}",
            transient=draft.failure.transient,
            llm_call_ids=[c.id for c in calls],
        )
    sources = dict(conversation.collected_data_sources or {})
    return TurnPlan(current=current, ctx=ctx, draft=draft, calls=calls, sources_read=sources)


def turn_apply(
    *, conversation: Conversation, plan: TurnPlan, updates: dict[str, Any] | None = None
) -> TurnResult:
    """Persist `plan` inside the caller's transaction: 2 queries (3 when staff changed the
    collected data during the turn).

    The ledger rows, then one UPDATE of the conversation (stage, turn count, the
    collected data, and `updates` the caller adds) that takes its row lock and
    reads back the AI mode, the lease and the collected data. `conversation` is
    updated in memory with what was read and written.
    """
    assert connection.in_atomic_block, "turn_apply runs inside the caller's transaction"
    assert plan.refused is None and plan.draft is not None and plan.ctx is not None
    ctx, draft, stage = plan.ctx, plan.draft, plan.stage
    now = timezone.now()
    llm_calls_save(calls=plan.calls)
    transaction.on_commit(lambda: setattr(plan, "committed", True))
    fields: dict[str, Any] = {"ai_turns": F("ai_turns") + 1, "updated_at": now, **(updates or {})}
    if stage is not None:
        fields["stage"] = stage
    source = {
        "message_id": str(ctx.trigger_message_id) if ctx.trigger_message_id else None,
        "at": now.isoformat(),
    }

    # The collected data is merged into what the turn read; the same UPDATE writes it only if
    # that is still what the row holds (compared under the row lock the UPDATE takes).
    merged, changed = collected_merge(ctx.collected_data, draft.extracted)
    sources = {**plan.sources_read, **dict.fromkeys(changed, source)}
    if changed:
        unchanged = Q(collected_data=ctx.collected_data)
        fields["collected_data"] = Case(
            When(unchanged, then=Value(merged, output_field=JSONField())), default=F("collected_data")
        )
        fields["collected_data_sources"] = Case(
            When(unchanged, then=Value(sources, output_field=JSONField())),
            default=F("collected_data_sources"),
        )
    rows = update_returning(
        Conversation.objects.filter(pk=conversation.pk), returning=_APPLIED_FIELDS, **fields
    )
    if not rows:
        raise Conversation.DoesNotExist(f"conversation {conversation.pk} is gone")
    row = rows[0]
    if changed and row.collected_data != merged:
        # Staff edited the collected data during the turn: merge into their version, still
        # under the row lock, so nothing of theirs is lost (one more UPDATE, rarely).
        merged, changed = collected_merge(row.collected_data or {}, draft.extracted)
        sources = {**(row.collected_data_sources or {}), **dict.fromkeys(changed, source)}
        if changed:
            Conversation.objects.filter(pk=conversation.pk).update(
                collected_data=merged, collected_data_sources=sources
            )
    elif not changed:
        merged, sources = row.collected_data or {}, row.collected_data_sources or {}

    for name in _APPLIED_FIELDS:
        setattr(conversation, name, getattr(row, name))
    conversation.collected_data, conversation.collected_data_sources = merged, sources
    conversation.updated_at = now
    if stage is not None:
        conversation.stage = stage
    result = plan.result(extracted={key: merged[key] for key in changed})
    logger.info(
        "Turn done: stage %s%s, %d calls, %d+%d tokens",
        draft.stage.key if draft.stage else "-",
        " (changed)" if draft.stage_changed else "",
        len(plan.calls),
        result.prompt_tokens,
        result.completion_tokens,
        extra={"business": str(ctx.business_id), "conversation": str(ctx.conversation_id)},
    )
    return result


@contextmanager
def ledger_kept(plan: TurnPlan) -> Iterator[None]:
    """Around the transaction that applies `plan`: if it fails (and rolls back), the ledger
    rows are written on their own, so every LLM request stays recorded."""
    try:
        yield
    except BaseException:
        if plan.calls and not plan.committed:  # not an error of what runs after the commit
            try:
                llm_calls_save(calls=plan.calls)
            except Exception:
                logger.exception("the ledger rows of a failed turn could not be written")
        raise


def turn_run(
    *,
    conversation: Conversation,
    messages: list[Message],
    dry_run: bool = False,
    config: TurnConfig | None = None,
) -> TurnResult:
    """Answer `messages` (the conversation's pending inbound messages, a burst as a whole).

    The conversation is read afresh, then `turn_think` and `turn_apply` in a
    transaction of its own (which updates `conversation` in memory). `dry_run` calls
    the model and writes the ledger (flagged dry_run) but leaves the
    conversation untouched. Do not call this inside a transaction that an
    `LLMUnavailable` escapes, or the ledger rows roll back with it.
    """
    # As it is now (the caller's copy may be older), with the rows the context needs.
    fresh = turn_conversation_get(conversation_id=conversation.pk)
    plan = turn_think(conversation=fresh, messages=messages, config=config, dry_run=dry_run)
    if plan.refused is not None:
        return plan.result()
    if dry_run:
        llm_calls_save(calls=plan.calls)
        _, changed = collected_merge(plan.ctx.collected_data, plan.draft.extracted)
        return plan.result(extracted={k: plan.draft.extracted[k] for k in changed})
    with ledger_kept(plan), transaction.atomic():
        return turn_apply(conversation=conversation, plan=plan)
