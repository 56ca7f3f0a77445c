"""What a turn knows, as plain dataclasses, and the selector that reads it from the database.

`turn_context_build` runs a fixed number of queries (at most five) whatever the
length of the conversation: it reads the newest `HISTORY_FETCH_LIMIT` messages
by index and keeps the newest that fit the business's history token budget, so
both the queries and the prompt stay flat as a conversation grows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from businesses.models import Agent, AIControlSettings
from conversations.models import Author, Conversation, Direction, Message, MessageStatus
from stages.models import Stage
from stages.selectors import stage_list, stage_templates_resolve
from templates_app.models import TemplateKind
from templates_app.selectors import ResolvedTemplate, template_defaults_get

logger = logging.getLogger(__name__)

# Messages read for the history before the token budget trims them: bounds the
# query whatever the budget, and is plenty for any sane budget.
HISTORY_FETCH_LIMIT = 200
# One message never takes more than this many characters of a prompt
# (WhatsApp allows 4096 per text; captions and API messages could be longer).
MAX_MESSAGE_CHARS = 4000
# Per-message overhead of the chat format, in tokens.
MESSAGE_OVERHEAD_TOKENS = 4
# Outbound messages that never reached the customer are not part of the conversation.
_UNSENT = (MessageStatus.FAILED, MessageStatus.CANCELLED)

KINDS = (TemplateKind.STAGE_SELECTION, TemplateKind.DATA_EXTRACTION, TemplateKind.RESPONSE_GENERATION)


@dataclass(frozen=True)
class TemplateInfo:
    id: Any
    kind: str
    content: str
    version: int
    # "stage", "business_default" or "platform_default": where the fallback chain found it.
    source: str


@dataclass(frozen=True)
class StageInfo:
    id: Any
    key: str
    name: str
    description: str
    is_initial: bool
    is_handoff: bool
    data_schema: dict[str, Any]
    # Resolved per kind (stage → business default → platform default); None: use the built-in.
    templates: dict[str, TemplateInfo | None] = field(default_factory=dict)

    @property
    def properties(self) -> dict[str, Any]:
        props = self.data_schema.get("properties") if isinstance(self.data_schema, dict) else None
        return props if isinstance(props, dict) else {}

    @property
    def required(self) -> list[str]:
        required = self.data_schema.get("required") if isinstance(self.data_schema, dict) else None
        return [r for r in required if isinstance(r, str)] if isinstance(required, list) else []


@dataclass(frozen=True)
class AgentInfo:
    name: str
    persona: str
    instructions: str
    model: str
    temperature: float
    max_tokens: int


@dataclass(frozen=True)
class ChatMessage:
    """One message of the conversation as the model sees it."""

    role: str  # "user" (the customer) or "assistant" (the AI, staff or the system)
    text: str
    message_id: Any = None


@dataclass(frozen=True)
class BudgetInfo:
    history_token_budget: int
    monthly_token_budget: int | None
    max_turns_per_conversation: int | None
    ai_turns: int


@dataclass(frozen=True)
class TurnContext:
    business_id: Any
    business: dict[str, Any]  # name, config
    agent: AgentInfo
    contact: dict[str, Any]  # name, channel
    stages: tuple[StageInfo, ...]
    current_stage: StageInfo | None
    collected_data: dict[str, Any]
    history: tuple[ChatMessage, ...]
    pending: tuple[ChatMessage, ...]
    # Templates for when there is no stage at all (business default → platform default).
    default_templates: dict[str, TemplateInfo | None]
    budget: BudgetInfo
    quick_replies_allowed: bool
    now: datetime
    conversation_id: Any = None
    # The newest pending message: the ledger's "triggering message" and the source of extracted data.
    trigger_message_id: Any = None
    # The Stage rows behind `stages`, by id, for the service (pure code never touches them).
    stage_models: dict[Any, Stage] = field(default_factory=dict, repr=False, compare=False)

    def stage_by_key(self, key: str | None) -> StageInfo | None:
        return next((s for s in self.stages if s.key == key), None)

    def templates_for(self, stage: StageInfo | None) -> dict[str, TemplateInfo | None]:
        return stage.templates if stage is not None else self.default_templates


def estimate_tokens(text: str) -> int:
    """A cheap, deliberately generous token estimate.

    About four ASCII characters make a token in English; other scripts take far
    more tokens per character, so each non-ASCII character counts as one.
    """
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return (ascii_chars + 3) // 4 + (len(text) - ascii_chars)


def chat_message_tokens(message: ChatMessage) -> int:
    return estimate_tokens(message.text) + MESSAGE_OVERHEAD_TOKENS


def history_trim(messages: list[ChatMessage], *, token_budget: int) -> list[ChatMessage]:
    """The newest messages (oldest first) whose estimated tokens fit `token_budget`."""
    kept: list[ChatMessage] = []
    used = 0
    for message in reversed(messages):
        cost = chat_message_tokens(message)
        if used + cost > token_budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    return kept


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
        budget=BudgetInfo(
            history_token_budget=ai_settings.history_token_budget,
            monthly_token_budget=ai_settings.monthly_token_budget,
            max_turns_per_conversation=ai_settings.max_turns_per_conversation,
            ai_turns=conversation.ai_turns,
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
