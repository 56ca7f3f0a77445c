"""What templates see: plain data in, the variables of one template kind out.

No ORM: the pipeline's prompt code and the template preview both build a
template's context here from plain values (or any object with a model's
fields), so neither needs the other's models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from templates_app.rendering import HANDOFF_KEY, VARIABLES


def business_prompt_data(*, business: Any) -> dict[str, Any]:
    return {"name": business.name, "config": business.config or {}}


def agent_prompt_data(*, agent: Any) -> dict[str, Any] | None:
    if agent is None:
        return None
    return {"name": agent.name, "persona": agent.persona, "instructions": agent.instructions}


def stage_prompt_data(*, stage: Any) -> dict[str, Any] | None:
    """What templates see of a stage (any object with a stage's fields)."""
    if stage is None:
        return None
    return {
        "key": stage.key,
        "name": stage.name,
        "description": stage.description,
        "is_handoff": stage.is_handoff,
        "data_schema": stage.data_schema or {},
    }


def missing_fields_get(
    *, data_schema: Mapping[str, Any] | None, collected_data: Mapping[str, Any]
) -> list[str]:
    """Required fields of `data_schema` that have no value in `collected_data` yet."""
    required = (data_schema or {}).get("required") or []
    return [name for name in required if collected_data.get(name) in (None, "", [], {})]


def template_context_build(
    *,
    kind: str,
    business: Mapping[str, Any],
    agent: Mapping[str, Any] | None,
    stage: Mapping[str, Any] | None,
    stages: Sequence[Mapping[str, Any]],
    collected_data: Mapping[str, Any] | None = None,
    contact: Mapping[str, Any] | None = None,
    quick_replies_allowed: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The variables a template of `kind` renders with, from plain data.

    Plain dicts in, plain dicts out, so the LLM pipeline and the preview build
    the same context and neither needs the other's models.
    """
    collected = dict(collected_data or {})
    schema = (stage or {}).get("data_schema") or {}
    context: dict[str, Any] = {
        "business": dict(business),
        "agent": dict(agent) if agent is not None else None,
        "stage": dict(stage) if stage is not None else None,
        "stages": [{k: s.get(k) for k in ("key", "name", "description", "is_handoff")} for s in stages],
        "collected_data": collected,
        "contact": dict(contact) if contact is not None else {"name": "", "channel": ""},
        "now": (now or datetime.now(UTC)).isoformat(timespec="seconds"),
        "handoff_key": HANDOFF_KEY,
        "schema": schema,
        "missing_fields": missing_fields_get(data_schema=schema, collected_data=collected),
        "quick_replies_allowed": quick_replies_allowed,
    }
    allowed = VARIABLES.get(kind, {})
    return {name: value for name, value in context.items() if name in allowed}
