"""JSON Schema helpers shared by business config and stage data schemas."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError


def load_schema(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def validator_for_file(path: str) -> Draft202012Validator:
    schema = load_schema(Path(path))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def instance_errors(validator: Draft202012Validator, instance: Any) -> list[dict[str, str]]:
    """Validation errors as `{"path", "message"}` dicts, sorted by path."""
    errors = []
    for error in validator.iter_errors(instance):
        path = "/".join(str(p) for p in error.absolute_path)
        errors.append({"path": path or "(root)", "message": error.message})
    return sorted(errors, key=lambda e: (e["path"], e["message"]))


def schema_errors(schema: Any) -> list[dict[str, str]]:
    """Errors that make `schema` an invalid JSON Schema (draft 2020-12)."""
    if not isinstance(schema, dict):
        return [{"path": "(root)", "message": "A JSON Schema must be an object."}]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path)
        return [{"path": path or "(root)", "message": exc.message}]
    return []
