"""Readers for untrusted provider payloads: they never raise, they answer a default.

The adapters' parsers read Meta's JSON through these, so a malformed field becomes a
noted problem on the batch, never an exception.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .base import ParsedBatch

logger = logging.getLogger(__name__)


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    """Strings as they are; ids that arrive as numbers (Messenger app_id) as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        try:
            return int(value.strip())
        except ValueError:  # e.g. a digit string longer than int() accepts
            return None
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


# Timestamps above this are milliseconds (Messenger), below it seconds (WhatsApp):
# 10**11 seconds is the year 5138, 10**11 milliseconds is 1973.
_MS_THRESHOLD = 10**11


def parse_timestamp(value: Any) -> datetime | None:
    """Unix seconds or milliseconds, int or string, as an aware UTC datetime."""
    number = as_float(value)
    if number is None or number < 0:
        return None
    if number >= _MS_THRESHOLD:
        number /= 1000
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def now() -> datetime:
    return datetime.now(tz=UTC)


def clean_errors(value: Any) -> list[dict[str, Any]]:
    """Meta's `errors[]` items reduced to code/title/message/details."""
    out = []
    for item in as_list(value):
        item = as_dict(item)
        if item:
            out.append(
                {
                    "code": as_int(item.get("code")),
                    "title": as_str(item.get("title")),
                    "message": as_str(item.get("message")),
                    # Legacy payloads put `details` beside the code instead of in error_data.
                    "details": as_str(as_dict(item.get("error_data")).get("details"))
                    or as_str(item.get("details")),
                }
            )
    return out


def list_at(batch: ParsedBatch, container: dict[str, Any], key: str, where: str) -> list[Any]:
    """container[key] as a list; absent is empty, any other type is a problem."""
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        batch.problems.append(f"{where}.{key}: expected a list, got {type(value).__name__}")
        return []
    return value


INTERNAL_PROBLEM = "internal parser error"


def safely(batch: ParsedBatch, where: str, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    """Run one item's parser; a bug in it costs that item, never the whole webhook.

    The readers above are meant to make this unreachable (the fuzz tests
    assert it); it is the safety net for shapes nobody has imagined yet.
    """
    try:
        fn(*args, **kwargs)
    except Exception:
        logger.exception("channel payload item could not be parsed", extra={"where": where})
        batch.problems.append(f"{where}: {INTERNAL_PROBLEM}")


def synthetic_id(prefix: str, *parts: object) -> str:
    """A stable id for events Meta sends without one (reactions), so redeliveries dedup."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"{prefix}.{digest}"
