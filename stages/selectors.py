"""Reads for stages and the templates each stage ends up using."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from businesses.models import Business
from stages.models import Stage
from templates_app.models import TemplateKind
from templates_app.selectors import ResolvedTemplate, TemplateSource, template_defaults_get

# The stage field naming its own template, per template kind.
TEMPLATE_FIELDS: dict[str, str] = {
    TemplateKind.STAGE_SELECTION: "selection_template",
    TemplateKind.DATA_EXTRACTION: "extraction_template",
    TemplateKind.RESPONSE_GENERATION: "response_template",
}


def stage_list(*, business: Business) -> QuerySet[Stage]:
    return Stage.objects.filter(business=business).select_related(*TEMPLATE_FIELDS.values())


def stage_get(*, business: Business, stage_id: Any) -> Stage | None:
    return stage_list(business=business).filter(pk=stage_id).first()


def stage_initial_get(*, business: Business) -> Stage | None:
    """The initial stage, or else the first one in order."""
    stages = stage_list(business=business)
    return stages.filter(is_initial=True).first() or stages.first()


def stage_templates_resolve(
    *, stage: Stage, defaults: dict[str, ResolvedTemplate] | None = None
) -> dict[str, ResolvedTemplate]:
    """Per kind, the template `stage` uses and where it comes from.

    The stage's own template, else the business default of that kind, else the
    platform default, else none. Pass `defaults` (from `template_defaults_get`)
    when resolving many stages of one business, to read the defaults once.
    """
    if defaults is None:
        defaults = template_defaults_get(business=stage.business)
    resolved = {}
    for kind, field in TEMPLATE_FIELDS.items():
        own = getattr(stage, field)
        resolved[kind] = ResolvedTemplate(own, TemplateSource.STAGE) if own is not None else defaults[kind]
    return resolved
