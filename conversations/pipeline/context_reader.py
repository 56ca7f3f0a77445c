"""The one reader of a turn's context: the database rows a turn needs, as `TurnContext`.

`turn_context_build` runs a fixed number of queries whatever the length of the
conversation: it reads the newest `HISTORY_FETCH_LIMIT` messages by index and
keeps the newest that fit the business's history token budget, so both the
queries and the prompt stay flat as a conversation grows. The turn and prompt
code below it never touch the ORM.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from businesses.models import Agent, AIControlSettings, Business
from conversations.models import Author, Conversation, Direction, LLMCall, Message, MessageStatus
from conversations.pipeline.context import (
    MAX_MESSAGE_CHARS,
    AgentInfo,
    BudgetInfo,
    ChatMessage,
    StageInfo,
    TemplateInfo,
    TurnContext,
    history_trim,
)
from stages.models import Stage
from stages.selectors import stage_list, stage_templates_resolve
from templates_app.models import TemplateKind
from templates_app.selectors import ResolvedTemplate, template_defaults_get

logger = logging.getLogger(__name__)

# Messages read for the history before the token budget trims them: bounds the
# query whatever the budget, and is plenty for any sane budget.
HISTORY_FETCH_LIMIT = 200
# Outbound messages that never reached the customer are not part of the conversation.
_UNSENT = (MessageStatus.FAILED, MessageStatus.CANCELLED)

KINDS = (TemplateKind.STAGE_SELECTION, TemplateKind.DATA_EXTRACTION, TemplateKind.RESPONSE_GENERATION)


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


def budget_info_build(*, ai_settings: AIControlSettings, business_id: Any, ai_turns: int) -> BudgetInfo:
    monthly = ai_settings.monthly_token_budget
    return BudgetInfo(
        history_token_budget=ai_settings.history_token_budget,
        monthly_token_budget=monthly,
        max_turns_per_conversation=ai_settings.max_turns_per_conversation,
        ai_turns=ai_turns,
        tokens_used_this_month=business_tokens_this_month(business_id=business_id)
        if monthly is not None
        else 0,
    )


def _message_text(message: Message) -> str:
    text = (message.text or "").strip()
    if not text:
        # Media without a caption, a reaction, a location …: tell the model what it was.
        text = f"[{message.get_type_display().lower()}]"
    return text[:MAX_MESSAGE_CHARS]


def _chat_message(message: Message) -> ChatMessage:
    role = "user" if message.direction == Direction.IN and message.author == Author.CUSTOMER else "assistant"
    return ChatMessage(role=role, text=_message_text(message), message_id=message.id)


def template_info_build(resolved: ResolvedTemplate) -> TemplateInfo | None:
    template = resolved.template
    if template is None:
        return None
    return TemplateInfo(
        id=template.id,
        kind=template.kind,
        content=template.content,
        version=template.version,
        source=str(resolved.source),
    )


def _templates(resolved: dict[str, ResolvedTemplate]) -> dict[str, TemplateInfo | None]:
    return {kind: template_info_build(resolved[kind]) for kind in KINDS if kind in resolved}


def stage_info_build(stage: Stage, defaults: dict[str, ResolvedTemplate]) -> StageInfo:
    schema = stage.data_schema if isinstance(stage.data_schema, dict) else {}
    return StageInfo(
        id=stage.id,
        key=stage.key,
        name=stage.name,
        description=stage.description,
        is_initial=stage.is_initial,
        is_handoff=stage.is_handoff,
        data_schema=schema,
        templates=_templates(stage_templates_resolve(stage=stage, defaults=defaults)),
    )


def _agent(conversation: Conversation) -> Agent | None:
    agent = conversation.agent or conversation.channel_account.agent
    if agent is not None:
        return agent
    return Agent.objects.filter(business_id=conversation.business_id, is_default=True).first()


def agent_info_build(agent: Agent | None) -> AgentInfo:
    if agent is None:
        agent = Agent(name="Assistant")  # unsaved: the model's defaults
    return AgentInfo(
        name=agent.name,
        persona=agent.persona,
        instructions=agent.instructions,
        model=agent.model or settings.LLM_MODEL,
        temperature=float(agent.temperature),
        max_tokens=int(agent.max_tokens),
    )


def turn_context_build(*, conversation: Conversation, messages: list[Message]) -> TurnContext:
    """Everything one turn needs, read in a fixed number of queries.

    `messages` are the pending inbound messages the turn answers (a burst is
    answered as a whole); they come last in every prompt. The history is what
    came before them, newest first until the token budget is spent.
    """
    conversation = Conversation.objects.select_related(
        "business", "business__ai_settings", "agent", "channel_account__agent", "contact"
    ).get(pk=conversation.pk)
    business = conversation.business
    try:
        ai_settings = business.ai_settings
    except AIControlSettings.DoesNotExist:
        ai_settings = AIControlSettings(business=business)  # unsaved: the defaults

    # Stage → business default → platform default, with the defaults read once.
    defaults = template_defaults_get(business=business)
    stage_rows = list(stage_list(business=business).order_by("order", "key"))
    stages = tuple(stage_info_build(stage, defaults) for stage in stage_rows)
    current = next((s for s in stages if s.id == conversation.stage_id), None)
    if current is None:
        current = next((s for s in stages if s.is_initial), stages[0] if stages else None)

    pending = sorted(messages, key=lambda m: (m.created_at, m.id))
    pending_ids = [m.id for m in pending]
    earlier = (
        Message.objects.filter(conversation=conversation, business=business)
        .exclude(id__in=pending_ids)
        .exclude(direction=Direction.OUT, status__in=_UNSENT)
        .only("id", "direction", "author", "type", "text", "created_at")
        .order_by("-created_at", "-id")
    )
    if pending:
        # Customer messages that arrived after this burst belong to the next turn;
        # replies stay, even when written after it (a turn that ran while the
        # customer was typing): without them the model re-answers old messages.
        earlier = earlier.exclude(direction=Direction.IN, created_at__gt=pending[-1].created_at)
    fetched = [_chat_message(m) for m in reversed(earlier[:HISTORY_FETCH_LIMIT])]
    history = history_trim(fetched, token_budget=ai_settings.history_token_budget)

    contact = conversation.contact
    return TurnContext(
        business_id=business.id,
        business={"name": business.name, "config": business.config or {}},
        agent=agent_info_build(_agent(conversation)),
        contact={"name": contact.name, "channel": conversation.channel_account.kind},
        stages=stages,
        current_stage=current,
        collected_data=dict(conversation.collected_data or {}),
        history=tuple(history),
        pending=tuple(_chat_message(m) for m in pending),
        default_templates=_templates(defaults),
        budget=budget_info_build(
            ai_settings=ai_settings, business_id=business.id, ai_turns=conversation.ai_turns
        ),
        # Every channel we support can show a few short reply options.
        quick_replies_allowed=True,
        # Minute resolution: instructions that quote the time then change once a minute, not on
        # every request, so the provider's prompt cache can reuse their prefix.
        now=timezone.now().replace(second=0, microsecond=0),
        conversation_id=conversation.id,
        trigger_message_id=pending[-1].id if pending else None,
        stage_models={stage.id: stage for stage in stage_rows},
    )


def sample_context_build(*, business: Business, text: str, contact: dict[str, Any]) -> TurnContext:
    """What `turn_context_build` reads for a conversation, for a customer who does not exist."""
    try:
        ai_settings = business.ai_settings
    except AIControlSettings.DoesNotExist:
        ai_settings = AIControlSettings(business=business)
    defaults = template_defaults_get(business=business)
    stage_rows = list(stage_list(business=business).order_by("order", "key"))
    stages = tuple(stage_info_build(stage, defaults) for stage in stage_rows)
    current = next((s for s in stages if s.is_initial), stages[0] if stages else None)
    agent = Agent.objects.filter(business=business, is_default=True).first()
    return TurnContext(
        business_id=business.id,
        business={"name": business.name, "config": business.config or {}},
        agent=agent_info_build(agent),
        contact=dict(contact),
        stages=stages,
        current_stage=current,
        collected_data={},
        history=(),
        pending=(ChatMessage(role="user", text=text[:MAX_MESSAGE_CHARS]),),
        default_templates={kind: template_info_build(item) for kind, item in defaults.items()},
        budget=budget_info_build(ai_settings=ai_settings, business_id=business.id, ai_turns=0),
        quick_replies_allowed=True,
        now=timezone.now().replace(second=0, microsecond=0),
        stage_models={stage.id: stage for stage in stage_rows},
    )
