"""JSON Schema helpers shared by business config and stage data schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError, ValidationError

from icmp.schema_patterns import (
    RE2_OPTIONS,
    PatternError,
    combination_problem,
    pattern_errors,
    re2_compile,
    re2_search,
    schema_patterns,
)


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


def tenant_schema_errors(schema: Any) -> list[dict[str, str]]:
    """`schema_errors`, and the regular expressions refused in a schema a tenant writes."""
    try:
        return schema_errors(schema) or pattern_errors(schema)
    except RecursionError:
        # jsonschema walks subschemas recursively: a few hundred levels exhaust the stack.
        return [{"path": "(root)", "message": "The schema is nested too deeply."}]


# --- validating against a tenant's schema: every pattern runs on RE2 ------------------


def _pattern(
    validator: Any, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not re2_search(pattern, instance):
        yield ValidationError(f"does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if re2_search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = sorted(
        key
        for key in instance
        if key not in properties and not any(re2_search(pattern, key) for pattern in patterns)
    )
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        yield ValidationError(f"Additional properties are not allowed ({', '.join(map(repr, extras))})")


def _is_regex(instance: object) -> bool:
    """The `regex` format, on RE2: Python's re compiling model output could raise
    OverflowError (`a{4294967296}`) or RecursionError (a thousand nested groups)."""
    if not isinstance(instance, str):
        return True
    try:
        re2.compile(instance, RE2_OPTIONS)  # not re2_compile: its cache is for the schema's own patterns
    except re2.error:
        return False
    return True


# The draft's format checks, with `regex` compiled by RE2 instead of Python's re.
_TENANT_FORMATS = FormatChecker()
_TENANT_FORMATS.checkers = {**Draft202012Validator.FORMAT_CHECKER.checkers, "regex": (_is_regex, ())}

_TenantValidator = validators.extend(
    Draft202012Validator,
    validators={
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    },
)


def tenant_schema_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for a schema a tenant wrote, whose patterns run on RE2 (linear time).

    Raises PatternError when the schema has a pattern RE2 cannot compile, or
    combines unevaluatedProperties with patternProperties (which jsonschema
    would match with Python's re): a schema saved before such schemas were refused.
    """
    for _, pattern in schema_patterns(schema):
        re2_compile(pattern)
    combination = combination_problem(schema)
    if combination:
        raise PatternError(combination)
    return _TenantValidator(schema, format_checker=_TENANT_FORMATS)
