"""Writes for prompt templates: create, update (with versions), delete.

Every write goes through `save()`, never `QuerySet.update()`, so
django-simple-history records each change (the versions endpoint reads it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from businesses.models import Business
from icmp.errors import ApplicationError
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.rendering import template_problems

UPDATABLE_FIELDS = ("name", "description", "content", "is_default")


def template_content_validate(*, kind: str, content: str) -> None:
    """Refuse content with unknown variables, syntax errors, sandbox violations or over a limit.

    A template over one of the sandbox's limits gets that limit's code
    (`loop_iterations_limit`, `value_size_limit` …); anything else is `invalid_template`.
    """
    problems = template_problems(kind=kind, content=content)
    if problems:
        limit = next((p.limit for p in problems if p.limit is not None), None)
        messages = [str(p) for p in problems]
        raise ApplicationError(
            "; ".join(messages),
            code=limit.code if limit is not None else "invalid_template",
            field="content",
            details={"content": messages},
        )


def _name_validate(*, business: Business | None, kind: str, name: str, exclude_id: Any = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A template needs a name.", field="name")
    clash = PromptTemplate.objects.filter(business=business, kind=kind, name=name)
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    if clash.exists():
        raise ApplicationError(
            f"A {kind} template named {name!r} already exists.", code="conflict", field="name"
        )
    return name


def _other_defaults_unset(*, template: PromptTemplate) -> None:
    """At most one default per kind and owner (a constraint); the newest choice wins."""
    others = (
        PromptTemplate.objects.select_for_update()
        .filter(business=template.business, kind=template.kind, is_default=True)
        .exclude(pk=template.pk)
    )
    for other in others:
        other.is_default = False
        other.save(update_fields=["is_default", "updated_at"])


def _save(template: PromptTemplate, **kwargs: Any) -> None:
    # The checks above run first; a concurrent writer can still win the race
    # for a name or the default flag, and that is a 400, not a 500.
    try:
        with transaction.atomic():
            template.save(**kwargs)
    except IntegrityError:
        raise ApplicationError(
            "Another template of this kind has the same name, or is the default; try again.",
            code="conflict",
        )


@transaction.atomic
def template_create(
    *,
    business: Business | None,
    kind: str,
    name: str,
    content: str,
    description: str = "",
    is_default: bool = False,
) -> PromptTemplate:
    """Create a template for `business` (None: a platform template)."""
    if kind not in TemplateKind.values:
        raise ApplicationError(
            f"Unknown kind {kind!r}; choose one of {', '.join(TemplateKind.values)}.", field="kind"
        )
    name = _name_validate(business=business, kind=kind, name=name)
    template_content_validate(kind=kind, content=content)
    template = PromptTemplate(
        business=business,
        kind=kind,
        name=name,
        description=description,
        content=content,
        is_default=is_default,
        version=1,
    )
    if is_default:
        _other_defaults_unset(template=template)
    _save(template)
    return template


@transaction.atomic
def template_update(*, template: PromptTemplate, data: Mapping[str, Any]) -> PromptTemplate:
    """Apply `data` (any of name, description, content, is_default).

    `kind` cannot change: stages and the LLM ledger rely on it. The version
    goes up by one when, and only when, the content changes.
    """
    if "kind" in data and data["kind"] != template.kind:
        raise ApplicationError(
            "The kind of a template cannot be changed; create a new template instead.",
            code="immutable",
            field="kind",
        )
    unknown = set(data) - {*UPDATABLE_FIELDS, "kind"}
    if unknown:
        raise ApplicationError(f"Cannot update {', '.join(sorted(unknown))}.", code="invalid")

    # Lock the row: two concurrent edits must not both become version n+1.
    template = PromptTemplate.objects.select_for_update().get(pk=template.pk)
    changed: list[str] = []
    if "name" in data:
        name = _name_validate(
            business=template.business, kind=template.kind, name=data["name"], exclude_id=template.pk
        )
        if name != template.name:
            template.name = name
            changed.append("name")
    if "description" in data and data["description"] != template.description:
        template.description = data["description"]
        changed.append("description")
    if "content" in data and data["content"] != template.content:
        template_content_validate(kind=template.kind, content=data["content"])
        template.content = data["content"]
        template.version += 1
        changed += ["content", "version"]
    if "is_default" in data and bool(data["is_default"]) != template.is_default:
        template.is_default = bool(data["is_default"])
        if template.is_default:
            _other_defaults_unset(template=template)
        changed.append("is_default")
    if changed:
        _save(template, update_fields=[*changed, "updated_at"])
    return template


@transaction.atomic
def template_delete(*, template: PromptTemplate) -> None:
    """Stages pointing at it fall back to the defaults (their FK is SET_NULL)."""
    template.delete()
