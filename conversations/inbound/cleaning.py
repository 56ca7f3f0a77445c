"""Reading and storing provider text: strict JSON, and text made storable (PostgreSQL
rejects NUL characters in text and jsonb, and lone surrogates, legal as JSON escapes,
cannot be encoded as UTF-8)."""

from __future__ import annotations

import re
from typing import Any

from icmp import strict_json

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


# Only JSON escapes can bring NUL or a lone surrogate into a decoded string.
_MAY_NEED_CLEANING = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


def parse_json(text: str) -> Any:
    """Strict JSON (icmp.strict_json): no NaN or Infinity, no nesting past its limit.

    Lone surrogates are kept, not refused (a user's broken emoji can reach Meta's
    payload), but cleaned with NUL characters here, once, so routing and look-ups
    query with the same strings storing writes. Raises ValueError.
    """
    payload = strict_json.loads(text, allow_lone_surrogates=True)
    return clean_json(payload) if _MAY_NEED_CLEANING.search(text) else payload
