"""Reads for prompt templates: lists, defaults, history and the render context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from django.db.models import Q, QuerySet

from businesses.models import Agent, Business
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.rendering import HANDOFF_KEY, VARIABLES


class TemplateSource(StrEnum):
    """Where the template a stage uses for one kind comes from."""

    STAGE = "stage"
    BUSINESS_DEFAULT = "business_default"
    PLATFORM_DEFAULT = "platform_default"


@dataclass(frozen=True)
class ResolvedTemplate:
    template: PromptTemplate | None
    source: TemplateSource | None


def template_list(*, business: Business, include_platform: bool = False) -> QuerySet[PromptTemplate]:
    """The business's own templates, and the platform's when asked."""
    scope = Q(business=business)
    if include_platform:
        scope |= Q(business__isnull=True)
    return PromptTemplate.objects.filter(scope)


def template_usable_get(*, business: Business, template_id: Any) -> PromptTemplate | None:
    """A template `business` may read or point a stage at: its own or a platform one."""
    return template_list(business=business, include_platform=True).filter(pk=template_id).first()


def template_defaults_get(*, business: Business) -> dict[str, ResolvedTemplate]:
    """Per kind, the business default or else the platform default (one query)."""
    rows = PromptTemplate.objects.filter(Q(business=business) | Q(business__isnull=True), is_default=True)
    found: dict[str, ResolvedTemplate] = {}
    for template in rows:
        if template.business_id is not None:
            found[template.kind] = ResolvedTemplate(template, TemplateSource.BUSINESS_DEFAULT)
        elif template.kind not in found:
            found[template.kind] = ResolvedTemplate(template, TemplateSource.PLATFORM_DEFAULT)
    return {kind: found.get(kind, ResolvedTemplate(None, None)) for kind in TemplateKind.values}


def template_versions_list(*, template: PromptTemplate) -> QuerySet:
    """The template's history records (one per save), with who made each change."""
    return template.history.select_related("history_user")


def business_prompt_data(*, business: Business) -> dict[str, Any]:
    return {"name": business.name, "config": business.config or {}}


def agent_prompt_get(*, business: Business, agent_id: Any = None) -> dict[str, Any] | None:
    """The given agent of `business`, else its default agent, as template data."""
    agents = Agent.objects.filter(business=business)
    agent = agents.filter(pk=agent_id).first() if agent_id is not None else None
    return agent_prompt_data(agent=agent or agents.filter(is_default=True).first())


def agent_prompt_data(*, agent: Agent | None) -> dict[str, Any] | None:
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
