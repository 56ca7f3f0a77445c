"""Writes for stages: create, update, delete, and the rules they keep.

Every write goes through `save()`, never `QuerySet.update()`, so
django-simple-history records each change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from businesses.models import Business
from icmp.errors import ApplicationError
from icmp.jsonschemas import tenant_schema_errors
from stages.models import Stage
from stages.selectors import TEMPLATE_FIELDS
from templates_app.models import PromptTemplate
from templates_app.rendering import HANDOFF_KEY

# Every stage schema is sent to the LLM on extraction turns: keep it prompt-sized.
MAX_SCHEMA_CHARS = 20_000
UPDATABLE_FIELDS = (
    "key",
    "name",
    "description",
    "order",
    "is_initial",
    "is_handoff",
    "data_schema",
    *TEMPLATE_FIELDS.values(),
)


def _remote_refs(node: Any, path: str = "") -> list[str]:
    """Paths of `$ref`s that leave the document: we never fetch other schemas."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}/{key}" if path else key
            if key in ("$ref", "$dynamicRef") and not (isinstance(value, str) and value.startswith("#")):
                found.append(here)
            else:
                found.extend(_remote_refs(value, here))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_remote_refs(value, f"{path}/{index}" if path else str(index)))
    return found


def stage_data_schema_validate(*, data_schema: Any) -> None:
    """A stage collects an object: its schema is a valid JSON Schema of `type: object`.

    `{}` (the default) means the stage collects nothing. Its patterns run on model
    output, so one that can backtrack catastrophically, or that RE2 cannot run,
    is refused (see `icmp.schema_patterns`).
    """
    errors = tenant_schema_errors(data_schema)
    if not errors and data_schema != {}:
        if data_schema.get("type") != "object":
            errors.append({"path": "type", "message": 'A stage schema must have "type": "object".'})
        for path in _remote_refs(data_schema):
            errors.append({"path": path, "message": "Only local references (#/…) are allowed."})
        if len(json.dumps(data_schema)) > MAX_SCHEMA_CHARS:
            errors.append({"path": "(root)", "message": f"Longer than {MAX_SCHEMA_CHARS} characters."})
    if errors:
        raise ApplicationError(
            "data_schema is not a valid JSON Schema for a stage: " + errors[0]["message"],
            code="invalid_schema",
            field="data_schema",
            details={"data_schema": errors},
        )


def _key_validate(*, business: Business, key: str, exclude_id: Any = None) -> str:
    if key == HANDOFF_KEY:
        raise ApplicationError(f"{HANDOFF_KEY!r} is reserved for handing off to staff.", field="key")
    clash = Stage.objects.filter(business=business, key=key)
    if exclude_id is not None:
        clash = clash.exclude(pk=exclude_id)
    if clash.exists():
        raise ApplicationError(f"A stage with key {key!r} already exists.", code="conflict", field="key")
    return key


def _template_validate(*, business: Business, field: str, template: PromptTemplate | None) -> None:
    if template is None:
        return
    kind = next(k for k, f in TEMPLATE_FIELDS.items() if f == field)
    if template.business_id not in (None, business.pk):
        # Same answer as an id that does not exist: never confirm another tenant's ids.
        raise ApplicationError("Template not found.", code="not_found", field=field)
    if template.kind != kind:
        raise ApplicationError(
            f"{field} must be a {kind} template; this one is {template.kind}.", field=field
        )


def _differs(stage: Stage, field: str, value: Any) -> bool:
    if field in TEMPLATE_FIELDS.values():
        # Compare ids: no query for the template the stage points at now.
        return getattr(stage, f"{field}_id") != (value.pk if value is not None else None)
    return getattr(stage, field) != value


def _other_initials_unset(*, stage: Stage) -> None:
    """One initial stage per business (a constraint): the newest choice wins."""
    others = (
        Stage.objects.select_for_update()
        .filter(business_id=stage.business_id, is_initial=True)
        .exclude(pk=stage.pk)
    )
    for other in others:
        other.is_initial = False
        other.save(update_fields=["is_initial", "updated_at"])


def _save(stage: Stage, **kwargs: Any) -> None:
    # The checks run first; a concurrent writer can still take the key, which is a 400, not a 500.
    try:
        with transaction.atomic():
            stage.save(**kwargs)
    except IntegrityError:
        raise ApplicationError(
            "Another stage took this key or the initial flag at the same time; try again.",
            code="conflict",
        )


@transaction.atomic
def stage_create(
    *,
    business: Business,
    key: str,
    name: str,
    description: str = "",
    order: int = 0,
    is_initial: bool = False,
    is_handoff: bool = False,
    data_schema: dict[str, Any] | None = None,
    selection_template: PromptTemplate | None = None,
    extraction_template: PromptTemplate | None = None,
    response_template: PromptTemplate | None = None,
) -> Stage:
    key = _key_validate(business=business, key=key)
    data_schema = {} if data_schema is None else data_schema
    stage_data_schema_validate(data_schema=data_schema)
    templates = {
        "selection_template": selection_template,
        "extraction_template": extraction_template,
        "response_template": response_template,
    }
    for field, template in templates.items():
        _template_validate(business=business, field=field, template=template)
    stage = Stage(
        business=business,
        key=key,
        name=name,
        description=description,
        order=order,
        is_initial=is_initial,
        is_handoff=is_handoff,
        data_schema=data_schema,
        **templates,
    )
    if is_initial:
        _other_initials_unset(stage=stage)
    _save(stage)
    return stage


@transaction.atomic
def stage_update(*, stage: Stage, data: Mapping[str, Any]) -> Stage:
    """Apply `data` (any of the stage's editable fields, templates as objects or None)."""
    unknown = set(data) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"Cannot update {', '.join(sorted(unknown))}.")
    business = stage.business
    stage = Stage.objects.select_for_update().get(pk=stage.pk)
    if "key" in data:
        _key_validate(business=business, key=data["key"], exclude_id=stage.pk)
    if "data_schema" in data:
        stage_data_schema_validate(data_schema=data["data_schema"])
    for field in TEMPLATE_FIELDS.values():
        if field in data:
            _template_validate(business=business, field=field, template=data[field])

    changed = [field for field in UPDATABLE_FIELDS if field in data and _differs(stage, field, data[field])]
    for field in changed:
        setattr(stage, field, data[field])
    if "is_initial" in changed and stage.is_initial:
        _other_initials_unset(stage=stage)
    if changed:
        _save(stage, update_fields=[*changed, "updated_at"])
    return stage


@transaction.atomic
def stage_delete(*, stage: Stage) -> None:
    """Conversations in this stage keep going with no stage (their FK is SET_NULL)."""
    stage.delete()
