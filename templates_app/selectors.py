"""Reads for prompt templates: lists, defaults, history and the render context."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.db.models import Q, QuerySet

from businesses.models import Agent, Business
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.prompt_data import agent_prompt_data


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


def agent_prompt_get(*, business: Business, agent_id: Any = None) -> dict[str, Any] | None:
    """The given agent of `business`, else its default agent, as template data."""
    agents = Agent.objects.filter(business=business)
    agent = agents.filter(pk=agent_id).first() if agent_id is not None else None
    return agent_prompt_data(agent=agent or agents.filter(is_default=True).first())
