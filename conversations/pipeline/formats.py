"""Structured-output formats (`response_format`) for the LLM calls of a turn. Pure: no database.

Stage selection and the reply use fixed strict schemas; extraction converts the
stage's data schema to the strict-mode subset when it can, and otherwise sends
it as is and validates the answer itself.
"""

from __future__ import annotations

from typing import Any

from templates_app.rendering import HANDOFF_KEY

MAX_QUICK_REPLIES = 3
MAX_QUICK_REPLY_CHARS = 20


def _json_schema_format(name: str, schema: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": strict, "schema": schema}}


def selection_format(stage_keys: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {"stage": {"type": "string", "enum": [*stage_keys, HANDOFF_KEY]}},
        "required": ["stage"],
        "additionalProperties": False,
    }
    return _json_schema_format("stage_selection", schema, strict=True)


REPLY_SCHEMA = {
    "type": "object",
    "properties": {
        "reply": {"type": "string", "description": "The message to send to the customer."},
        "quick_replies": {
            "type": "array",
            "items": {"type": "string"},
            "description": (
                f"Up to {MAX_QUICK_REPLIES} short options (at most {MAX_QUICK_REPLY_CHARS} characters "
                "each) the customer can tap to answer, when the reply offers a few fixed choices; "
                "otherwise an empty list."
            ),
        },
    },
    "required": ["reply", "quick_replies"],
    "additionalProperties": False,
}


def reply_format() -> dict[str, Any]:
    return _json_schema_format("reply", REPLY_SCHEMA, strict=True)


# Keywords strict mode may not accept but that only constrain values: dropped from the
# schema sent to the model, still enforced when we validate the answer against the original.
_CONSTRAINT_KEYWORDS = frozenset(
    {
        "format", "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "uniqueItems", "minProperties",
        "maxProperties", "default", "examples", "title", "$comment", "deprecated", "readOnly",
        "writeOnly", "$schema", "$id",
    }
)  # fmt: skip
_SHAPE_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "description",
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})


def _strict_node(node: Any, *, nullable: bool = False) -> dict[str, Any] | None:
    """`node` in the strict-mode subset, or None when it cannot be expressed there.

    Strict mode wants every property required and `additionalProperties: false`
    on every object; an optional property becomes required but nullable, and
    the pipeline drops the nulls from the answer.
    """
    if not isinstance(node, dict) or set(node) - _SHAPE_KEYWORDS - _CONSTRAINT_KEYWORDS:
        return None
    out: dict[str, Any] = {}
    if isinstance(node.get("description"), str):
        out["description"] = node["description"]

    if "anyOf" in node:
        if not isinstance(node["anyOf"], list) or set(node) & {
            "type",
            "properties",
            "enum",
            "const",
            "items",
        }:
            return None
        branches = [_strict_node(b) for b in node["anyOf"]]
        if not branches or any(b is None for b in branches):
            return None
        if nullable and {"type": "null"} not in branches:
            branches.append({"type": "null"})
        out["anyOf"] = branches
        return out

    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        if not isinstance(values, list) or not values:
            return None
        out["enum"] = [*values, None] if nullable and None not in values else list(values)
        if "type" in node:
            types = [node["type"]] if isinstance(node["type"], str) else list(node["type"])
            if not set(types) <= _TYPES or "object" in types or "array" in types:
                return None
            if nullable and "null" not in types:
                types.append("null")
            out["type"] = types[0] if len(types) == 1 else types
        return out

    kind = node.get("type", "object" if "properties" in node else None)
    types = [kind] if isinstance(kind, str) else list(kind) if isinstance(kind, list) else []
    if not types or not set(types) <= _TYPES:
        return None
    concrete = [t for t in types if t != "null"]
    if "object" in concrete:
        properties = node.get("properties")
        required = node.get("required", [])
        if (
            len(concrete) > 1
            or not isinstance(properties, dict)
            or not properties
            or node.get("additionalProperties", False) is not False
            or not isinstance(required, list)
            or not set(required) <= set(properties)
        ):
            return None  # free-form or open objects have no strict form
        converted = {}
        for name, sub in properties.items():
            strict_sub = _strict_node(sub, nullable=name not in required)
            if strict_sub is None:
                return None
            converted[name] = strict_sub
        out.update(properties=converted, required=list(properties), additionalProperties=False)
    elif "array" in concrete:
        items = _strict_node(node.get("items"))
        if len(concrete) > 1 or items is None:
            return None
        out["items"] = items
    if nullable and "null" not in types:
        types.append("null")
    out["type"] = types[0] if len(types) == 1 else types
    return out


def schema_partial(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without its top-level `required` list.

    That list says what the stage needs before it is complete (the reply asks for
    what is missing), not what each message gives: forcing it on every answer
    would make the model invent values the customer never stated.
    """
    return {k: v for k, v in schema.items() if k != "required"}


def strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The strict-mode form of a stage's data schema (every top-level field nullable), or None."""
    converted = _strict_node(schema_partial(schema))
    if converted is None or converted.get("type") != "object":
        return None
    return converted


def extraction_format(schema: dict[str, Any]) -> dict[str, Any]:
    """Strict when the schema allows it; otherwise the schema as is, which we validate ourselves."""
    strict = strict_schema(schema)
    if strict is not None:
        return _json_schema_format("data_extraction", strict, strict=True)
    loose = {k: v for k, v in schema_partial(schema).items() if k not in ("$schema", "$id")}
    return _json_schema_format("data_extraction", loose, strict=False)
