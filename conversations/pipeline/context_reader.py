"""The one reader of a turn's context: the database rows a turn needs, as `TurnContext`.

`turn_context_build` runs a fixed number of queries whatever the length of the
conversation: it reads the newest `HISTORY_FETCH_LIMIT` messages by index and
keeps the newest that fit the business's history token budget, so both the
queries and the prompt stay flat as a conversation grows. The turn and prompt
code below it never touch the ORM.

What a turn reads about its business (stages with their resolved templates,
the template defaults, the AI settings, the agents) is `TurnConfig`, cached per
business under its config version (`businesses/config_version.py`): every
write of those rows bumps the version, and the turn reads the version afresh
with the conversation, so an edit is seen by the very next turn. On a warm
cache a turn's context costs one query, the history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from businesses.models import Agent, AIControlSettings, Business
from conversations.models import Author, Conversation, Direction, LLMCall, Message, MessageStatus, MessageType
from conversations.pipeline.context import (
    MAX_MESSAGE_CHARS,
    MESSAGE_OVERHEAD_TOKENS,
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


_TOKENS = Sum(Coalesce(F("prompt_tokens"), 0) + Coalesce(F("completion_tokens"), 0))


def business_tokens_this_month(*, business_id: Any) -> int:
    """Prompt plus completion tokens of the business's LLM calls this calendar month: one query.

    Dry runs count too: the provider bills them all the same.
    """
    total = LLMCall.objects.filter(business_id=business_id, created_at__gte=month_start()).aggregate(
        tokens=_TOKENS
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


_TYPE_LABELS = {value: str(label).lower() for value, label in MessageType.choices}
_HISTORY_FIELDS = ("id", "direction", "author", "type", "text")


def _chat(message_id: Any, direction: str, author: str, type_: str, text: str | None) -> ChatMessage:
    text = (text or "").strip()
    if not text:
        # Media without a caption, a reaction, a location …: tell the model what it was.
        text = f"[{_TYPE_LABELS.get(type_, type_)}]"
    role = "user" if direction == Direction.IN and author == Author.CUSTOMER else "assistant"
    return ChatMessage(role=role, text=text[:MAX_MESSAGE_CHARS], message_id=message_id)


def _chat_message(message: Message) -> ChatMessage:
    return _chat(message.id, message.direction, message.author, message.type, message.text)


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


# --- what a turn reads about its business, cached per config version ---------------------


@dataclass(frozen=True)
class TurnConfig:
    """A business's stages (resolved templates and all), template defaults, AI settings and agents."""

    business_id: Any
    version: int
    ai_settings: AIControlSettings | None  # None: the business has none (the defaults apply)
    agents: dict[Any, Agent]
    default_agent_id: Any
    stages: tuple[StageInfo, ...]
    default_templates: dict[str, TemplateInfo | None]
    # The Stage rows behind `stages`, by id (no related rows attached).
    stage_models: dict[Any, Stage]


CONFIG_CACHE_KEY = "turn-config:v1:{business_id}:{version}"


def _turn_config_read(business: Business) -> TurnConfig:
    """Four queries: the settings, the template defaults, the stages, the agents."""
    ai_settings = AIControlSettings.objects.filter(business_id=business.pk).first()
    # Stage → business default → platform default, with the defaults read once.
    defaults = template_defaults_get(business=business)
    stage_rows = list(stage_list(business=business).order_by("order", "key"))
    stages = tuple(stage_info_build(stage, defaults) for stage in stage_rows)
    for stage in stage_rows:
        stage._state.fields_cache = {}  # their templates live on in `stages`; keep the entry small
    agents = {agent.id: agent for agent in Agent.objects.filter(business_id=business.pk)}
    return TurnConfig(
        business_id=business.pk,
        version=business.config_version,
        ai_settings=ai_settings,
        agents=agents,
        default_agent_id=next((a.id for a in agents.values() if a.is_default), None),
        stages=stages,
        default_templates=_templates(defaults),
        stage_models={stage.id: stage for stage in stage_rows},
    )


# Recently used configs of this process, by cache key: no round trip to the cache and no
# unpickling on most turns. The key names the version, so this is as fresh as the cache.
_LOCAL_MAX = 256
_local: OrderedDict[str, tuple[float, TurnConfig]] = OrderedDict()
_local_lock = threading.Lock()


def _local_get(key: str) -> TurnConfig | None:
    with _local_lock:
        entry = _local.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        _local.move_to_end(key)
        return entry[1]


def _local_put(key: str, config: TurnConfig, seconds: float) -> None:
    with _local_lock:
        _local[key] = (time.monotonic() + seconds, config)
        _local.move_to_end(key)
        while len(_local) > _LOCAL_MAX:
            _local.popitem(last=False)


def turn_config_get(*, business: Business) -> TurnConfig:
    """The business's `TurnConfig` for its current `config_version` (as read with `business`).

    From this process's recent configs, else the Django cache (Redis in
    production), else read (four queries) and stored in both. A cache that is
    down only costs the reads. Treat it as read-only: it is shared by threads.
    """
    seconds = settings.TURN_CONFIG_CACHE_SECONDS
    if not seconds:
        return _turn_config_read(business)
    key = CONFIG_CACHE_KEY.format(business_id=business.pk, version=business.config_version)
    config = _local_get(key)
    if config is not None:
        return config
    try:
        config = cache.get(key)
    except Exception:  # the cache is away: read the rows
        logger.warning("turn config cache unavailable", exc_info=True)
        config = None
    if config is None:
        config = _turn_config_read(business)
        try:
            cache.set(key, config, seconds)
        except Exception:
            logger.warning("turn config not cached", exc_info=True)
    _local_put(key, config, seconds)
    return config


def _settings_or_defaults(config: TurnConfig) -> AIControlSettings:
    if config.ai_settings is not None:
        return config.ai_settings
    return AIControlSettings(business_id=config.business_id)  # unsaved: the defaults


def _agent(conversation: Conversation, config: TurnConfig) -> Agent | None:
    agent_id = conversation.agent_id or conversation.channel_account.agent_id
    if agent_id is None:
        return config.agents.get(config.default_agent_id)
    agent = config.agents.get(agent_id)
    if agent is None:  # not one of the business's agents: read it as it is
        agent = Agent.objects.filter(pk=agent_id).first()
    return agent


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


def history_fetch_limit(token_budget: int) -> int:
    """Messages worth reading for a history of `token_budget` tokens: no message costs less
    than its overhead and one token, so more could never fit."""
    return max(1, min(HISTORY_FETCH_LIMIT, token_budget // (MESSAGE_OVERHEAD_TOKENS + 1) + 1))


def turn_conversation_get(*, conversation_id: Any) -> Conversation:
    """The conversation with the rows `turn_context_build` reads from it: one query."""
    return Conversation.objects.select_related("business", "channel_account", "contact").get(
        pk=conversation_id
    )


def turn_context_build(
    *, conversation: Conversation, messages: list[Message], config: TurnConfig | None = None
) -> TurnContext:
    """Everything one turn needs, read in a fixed number of queries.

    `conversation` is used as given (not read again): read it with `business`,
    `channel_account` and `contact` (`turn_conversation_get`) to spare their
    queries. `config` is the business's `TurnConfig` when the caller has it.
    `messages` are the pending inbound messages the turn answers (a burst is
    answered as a whole); they come last in every prompt. The history is what
    came before them, newest first until the token budget is spent.
    """
    business = conversation.business
    if config is None:
        config = turn_config_get(business=business)
    ai_settings = _settings_or_defaults(config)
    stages = config.stages
    current = next((s for s in stages if s.id == conversation.stage_id), None)
    if current is None:
        current = next((s for s in stages if s.is_initial), stages[0] if stages else None)

    pending = sorted(messages, key=lambda m: (m.created_at, m.id))
    # Outbound messages that never reached the customer are not part of the conversation.
    scope = Q(conversation_id=conversation.pk, business_id=business.pk) & ~Q(
        direction=Direction.OUT, status__in=_UNSENT
    )
    if pending:
        # Customer messages that arrived after this burst belong to the next turn;
        # replies stay, even when written after it (a turn that ran while the
        # customer was typing): without them the model re-answers old messages.
        scope &= ~Q(id__in=[m.id for m in pending]) & ~Q(
            direction=Direction.IN, created_at__gt=pending[-1].created_at
        )
    # One filter() (each filter or exclude copies the query: CPU a turn can spare).
    rows = (
        Message.objects.filter(scope)
        .order_by("-created_at", "-id")
        .values_list(*_HISTORY_FIELDS)[: history_fetch_limit(ai_settings.history_token_budget)]
    )
    fetched = [_chat(*row) for row in reversed(rows)]
    history = history_trim(fetched, token_budget=ai_settings.history_token_budget)

    contact = conversation.contact
    return TurnContext(
        business_id=business.id,
        business={"name": business.name, "config": business.config or {}},
        agent=agent_info_build(_agent(conversation, config)),
        contact={"name": contact.name, "channel": conversation.channel_account.kind},
        stages=stages,
        current_stage=current,
        collected_data=dict(conversation.collected_data or {}),
        history=tuple(history),
        pending=tuple(_chat_message(m) for m in pending),
        default_templates=config.default_templates,
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
        stage_models=config.stage_models,
    )


def sample_context_build(*, business: Business, text: str, contact: dict[str, Any]) -> TurnContext:
    """What `turn_context_build` reads for a conversation, for a customer who does not exist."""
    config = turn_config_get(business=business)
    stages = config.stages
    current = next((s for s in stages if s.is_initial), stages[0] if stages else None)
    return TurnContext(
        business_id=business.id,
        business={"name": business.name, "config": business.config or {}},
        agent=agent_info_build(config.agents.get(config.default_agent_id)),
        contact=dict(contact),
        stages=stages,
        current_stage=current,
        collected_data={},
        history=(),
        pending=(ChatMessage(role="user", text=text[:MAX_MESSAGE_CHARS]),),
        default_templates=config.default_templates,
        budget=budget_info_build(
            ai_settings=_settings_or_defaults(config), business_id=business.id, ai_turns=0
        ),
        quick_replies_allowed=True,
        now=timezone.now().replace(second=0, microsecond=0),
        stage_models=config.stage_models,
    )
