"""Making provider text storable: PostgreSQL rejects NUL characters in text and jsonb,
and lone surrogates (legal as JSON escapes) cannot be encoded as UTF-8."""

from __future__ import annotations

from typing import Any

ERROR_MAX = 2000
NOTES_SHOWN = 20


def clean_str(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_str(value)
    if isinstance(value, dict):
        return {clean_str(str(k)): clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_json(v) for v in value]
    return value
