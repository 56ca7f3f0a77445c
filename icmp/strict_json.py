"""Strict JSON for bodies from outside: bounded nesting, valid Unicode, no NaN.

Python's json recurses once per nesting level, so a small body nested
thousands deep raises RecursionError, a 500, before any validation runs; a
depth it can still parse breaks later code that recurses over the value
(JSON schema validation, the admin's pretty-printer, json.dumps on save).
A lone UTF-16 surrogate ("\\ud800") is valid JSON grammar but not Unicode:
neither UTF-8 nor PostgreSQL can store it. The API parser (icmp.api.parsers)
refuses both. The Meta webhooks refuse the depth but keep lone surrogates: a
user's broken emoji can reach Meta's payload, refusing it would make Meta
retry for days, and conversations.inbound cleans strings before storing them.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Far deeper than any body the API or Meta sends (under 10 levels), far shallower
# than any recursion limit.
MAX_DEPTH = 64

# A \uXXXX escape in the surrogate range, or a surrogate already in the text (a caller
# that decoded it leniently): only then can a decoded string hold one.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


class JSONRejected(ValueError):
    """Well-formed JSON this application refuses to take in."""


def _reject_constant(constant: str) -> Any:
    raise JSONRejected(f"{constant} is not valid JSON.")


def _check_depth(value: Any, max_depth: int) -> None:
    # Iterative: the parsed value is already bounded by the recursion limit, but
    # checking it must not recurse either.
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise JSONRejected(f"Nesting deeper than {max_depth} levels.")
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))


def _check_unicode(text: str, value: Any) -> None:
    if not _MAYBE_SURROGATE.search(text):
        return
    try:
        # Keys and values alike, at C speed: paired surrogates decode to one character,
        # a lone one stays a surrogate, which UTF-8 cannot encode.
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise JSONRejected("A string holds a lone UTF-16 surrogate, which is not a Unicode character.")


def loads(text: str, *, max_depth: int = MAX_DEPTH, allow_lone_surrogates: bool = False) -> Any:
    """Parse `text`; ValueError (JSONRejected or json.JSONDecodeError) when it is refused."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise JSONRejected(f"Nesting deeper than {max_depth} levels.")
    _check_depth(value, max_depth)
    if not allow_lone_surrogates:
        _check_unicode(text, value)
    return value
