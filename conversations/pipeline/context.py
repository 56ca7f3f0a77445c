"""What a turn knows, as plain dataclasses, and the token arithmetic on them.

No ORM here: `conversations/pipeline/context_reader.py` is the one module that
reads a turn's context from the database; the turn and prompt code only ever
see these dataclasses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the service's handle on the rows; never touched by pure code
    from stages.models import Stage

logger = logging.getLogger(__name__)

# One message never takes more than this many characters of a prompt
# (WhatsApp allows 4096 per text; captions and API messages could be longer).
MAX_MESSAGE_CHARS = 4000
# Per-message overhead of the chat format, in tokens.
MESSAGE_OVERHEAD_TOKENS = 4


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
    # The business's tokens this calendar month, read only when a monthly budget is set.
    tokens_used_this_month: int = 0


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
    if text.isascii():
        return (len(text) + 3) // 4
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
