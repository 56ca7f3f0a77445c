"""The preview playground: the prompts a template or stage produces, and dry turns.

Staff pick a conversation of the business, or type a sample customer message,
and see the rendered prompt messages; a dry run sends them to the model through
the pipeline's own pieces (`turn_context_build`, `turn_draft`, the ledger) and
shows what the assistant would do, without sending anything or touching the
conversation.

`turn_run(dry_run=True)` is not called directly: it always uses the templates
and stage the conversation resolves to, while the playground previews one
template or stage that may not be in use yet. It builds the same context,
swaps in the previewed template or stage, runs the same draft and writes the
same ledger rows (flagged `dry_run`); nothing else is written.

A typed sample message never becomes a row: the context is built in memory
from the business's stages, templates, agent and settings, so there is
nothing to roll back, and the ledger rows of the dry run (with no
conversation) are ordinary committed writes.

This module imports the conversation pipeline, unlike the rest of
`templates_app`: it is a back-office door onto both apps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from businesses.models import Business
from conversations.llm.client import llm_complete, llm_configured
from conversations.models import Author, Conversation, Direction, LLMCall, Message
from conversations.pipeline.budget import turn_budget_exceeded
from conversations.pipeline.context import (
    MAX_MESSAGE_CHARS,
    ChatMessage,
    StageInfo,
    TemplateInfo,
    TurnContext,
)
from conversations.pipeline.context_reader import (
    sample_context_build,
    turn_context_build,
)
from conversations.pipeline.prompts import Prompt, extraction_prompt, response_prompt, selection_prompt
from conversations.pipeline.service import draft_ledger_write, turn_totals
from conversations.pipeline.turn import collected_merge, turn_draft
from icmp.errors import ApplicationError
from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind

# How far back to look for the customer's latest burst of messages in a conversation.
RECENT_MESSAGES = 50
SAMPLE_CONTACT = {"name": "Sample customer", "channel": ""}
PREVIEW_SOURCE = "playground"
NO_LLM_MESSAGE = (
    "No LLM is configured (OPENAI_API_KEY or OPENAI_BASE_URL), so a dry run cannot call a model. "
    "Render still shows the prompts."
)
KIND_OF_PURPOSE = {
    "selection": TemplateKind.STAGE_SELECTION,
    "extraction": TemplateKind.DATA_EXTRACTION,
    "response": TemplateKind.RESPONSE_GENERATION,
}


@dataclass(frozen=True)
class RenderedPrompt:
    purpose: str
    kind: str
    # "Friendly reply v3 (previewed)", "business default …" or "built-in instructions".
    template_label: str
    messages: list[dict[str, str]]
    # Set when the previewed template failed to render and the built-in was used instead.
    warning: str = ""


@dataclass
class DryRun:
    # Why no model was called (no LLM configured, budget spent); nothing else is set then.
    refused: str | None = None
    stage: StageInfo | None = None
    stage_changed: bool = False
    extracted: dict[str, Any] = field(default_factory=dict)
    reply_text: str | None = None
    quick_replies: list[str] = field(default_factory=list)
    handoff_reason: str | None = None
    # A required call failed: the turn would have gone to staff.
    failure: str | None = None
    calls: list[LLMCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal | None = None
    # Sum of the calls' latencies, and the wall time of the whole turn (calls run in parallel).
    latency_ms: int = 0
    wall_ms: int = 0


def _latest_burst(conversation: Conversation) -> list[Message]:
    """The customer's newest run of messages (oldest first): what the next turn would answer."""
    recent = Message.objects.filter(conversation=conversation, business_id=conversation.business_id).order_by(
        "-created_at", "-id"
    )[:RECENT_MESSAGES]
    burst: list[Message] = []
    for message in recent:
        is_customer = message.direction == Direction.IN and message.author == Author.CUSTOMER
        if is_customer:
            burst.append(message)
        elif burst:
            break
    burst.reverse()
    return burst


def _with_template(ctx: TurnContext, template: PromptTemplate) -> TurnContext:
    """Every stage, and the no-stage fallback, use `template` for its kind."""
    info = TemplateInfo(
        id=template.id,
        kind=template.kind,
        content=template.content,
        version=template.version,
        source=PREVIEW_SOURCE,
    )
    stages = tuple(replace(s, templates={**s.templates, template.kind: info}) for s in ctx.stages)
    current_id = ctx.current_stage.id if ctx.current_stage else None
    return replace(
        ctx,
        stages=stages,
        current_stage=next((s for s in stages if s.id == current_id), None),
        default_templates={**ctx.default_templates, template.kind: info},
    )


def playground_context_build(
    *,
    business: Business,
    conversation: Conversation | None = None,
    sample_text: str = "",
    template: PromptTemplate | None = None,
    stage: Stage | None = None,
) -> TurnContext:
    """The turn context for a preview: a conversation (its latest customer burst, or
    `sample_text` as a new message after its history) or `sample_text` alone.

    `template` replaces the template of its kind everywhere; `stage` becomes the
    current stage. Both must belong to `business` (or the platform, for a template).
    """
    sample_text = (sample_text or "").strip()
    if conversation is not None and conversation.business_id != business.pk:
        raise ApplicationError("Conversation not found.", code="not_found", field="conversation")
    if stage is not None and stage.business_id != business.pk:
        raise ApplicationError("Stage not found.", code="not_found", field="stage")
    if template is not None and template.business_id not in (None, business.pk):
        raise ApplicationError("Template not found.", code="not_found")

    if conversation is None:
        if not sample_text:
            raise ApplicationError(
                "Pick a conversation or type a sample customer message.", field="sample_text"
            )
        ctx = sample_context_build(business=business, text=sample_text, contact=SAMPLE_CONTACT)
    elif sample_text:
        # The whole history, then the typed message as if the customer had just sent it.
        ctx = turn_context_build(conversation=conversation, messages=[])
        ctx = replace(
            ctx,
            pending=(ChatMessage(role="user", text=sample_text[:MAX_MESSAGE_CHARS]),),
            trigger_message_id=None,
        )
    else:
        burst = _latest_burst(conversation)
        if not burst:
            raise ApplicationError(
                "This conversation has no customer message yet; type a sample message.", field="conversation"
            )
        ctx = turn_context_build(conversation=conversation, messages=burst)

    if template is not None:
        ctx = _with_template(ctx, template)
    if stage is not None:
        ctx = replace(ctx, current_stage=next((s for s in ctx.stages if s.id == stage.id), ctx.current_stage))
    return ctx


# --- render ------------------------------------------------------------------------


def _template_label(prompt: Prompt) -> str:
    info = prompt.template
    if info is None:
        return "built-in instructions"
    name = PromptTemplate.objects.filter(pk=info.id).values_list("name", flat=True).first() or "?"
    source = {
        PREVIEW_SOURCE: "previewed",
        "stage": "the stage's own",
        "business_default": "business default",
        "platform_default": "platform default",
    }.get(info.source, info.source)
    return f"{name} v{info.version} ({source})"


def playground_prompts_render(*, ctx: TurnContext, kind: str | None = None) -> list[RenderedPrompt]:
    """The prompt messages of the turn's calls for the current stage (only `kind`'s, if given).

    Selection runs before anything else; extraction and the reply are shown for
    the current stage, as the turn would build them if the stage does not change.
    """
    prompts: list[Prompt] = []
    if ctx.stages:
        prompts.append(selection_prompt(ctx))
    if ctx.current_stage is not None:
        extraction = extraction_prompt(ctx, stage=ctx.current_stage, collected_data=ctx.collected_data)
        if extraction is not None:
            prompts.append(extraction)
    prompts.append(response_prompt(ctx, stage=ctx.current_stage, collected_data=ctx.collected_data))

    rendered = []
    for prompt in prompts:
        prompt_kind = KIND_OF_PURPOSE[prompt.purpose]
        if kind is not None and prompt_kind != kind:
            continue
        wanted = ctx.templates_for(prompt.stage).get(prompt_kind)
        warning = ""
        if wanted is not None and prompt.template is None:
            # The pipeline falls back to the built-in text rather than go silent; say so here.
            warning = (
                f"The template failed to render with this data ({prompt.render_error}); "
                "the pipeline would use the built-in text."
            )
        rendered.append(
            RenderedPrompt(
                purpose=prompt.purpose,
                kind=prompt_kind,
                template_label=_template_label(prompt),
                messages=prompt.messages,
                warning=warning,
            )
        )
    return rendered


# --- dry run -----------------------------------------------------------------------


def playground_dry_run(*, ctx: TurnContext) -> DryRun:
    """Run the turn's LLM calls for `ctx` and write them to the ledger as dry runs.

    Nothing is sent and no conversation, message or stage changes. The monthly
    token budget applies (dry runs are billed); a conversation's turn cap does not.
    Must not run inside a transaction that could roll the ledger rows back.
    """
    if not llm_configured():
        return DryRun(refused=NO_LLM_MESSAGE)
    reason = turn_budget_exceeded(budget=replace(ctx.budget, max_turns_per_conversation=None))
    if reason is not None:
        return DryRun(refused=f"No dry run: {reason}.")

    started = time.monotonic()
    draft = turn_draft(ctx=ctx, llm=llm_complete)
    wall_ms = int((time.monotonic() - started) * 1000)
    calls = draft_ledger_write(ctx, draft, dry_run=True)
    prompt_tokens, completion_tokens, cost = turn_totals(calls)
    _, changed = collected_merge(ctx.collected_data, draft.extracted)
    failure = None
    if draft.failure is not None:
        failure = f"The LLM failed during {draft.failed_purpose or 'the turn'}: {draft.failure}"
    return DryRun(
        stage=draft.stage,
        stage_changed=draft.stage_changed,
        extracted={key: draft.extracted[key] for key in changed},
        reply_text=draft.reply_text,
        quick_replies=draft.quick_replies,
        handoff_reason=draft.handoff_reason,
        failure=failure,
        calls=calls,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        latency_ms=sum(c.latency_ms or 0 for c in calls),
        wall_ms=wall_ms,
    )
