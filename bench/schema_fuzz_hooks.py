"""Schemathesis hooks for bench.schema_fuzz: hostile input beside schema-valid input.

Loaded by the schemathesis CLI through SCHEMATHESIS_HOOKS=bench.schema_fuzz_hooks
(bench.schema_fuzz sets it). Adds to the generated cases:

- JSON bodies nested past any parser's limit (up to the probe's 60,000 levels)
  or holding a lone UTF-16 surrogate, sent as raw bytes (Python's json could
  not even encode the deep ones);
- date and date-time values at the calendar's ends with extreme UTC offsets,
  for every parameter or field documented with those formats;

and the check `hostile_input_is_refused`: such a request is answered 4xx (never
2xx, never 5xx) with the JSON error body, and a validation error for an
overflowing date names its parameter. (tests/api/test_hostile_input.py pins the
exact answers: 400 `parse_error` for every hostile body.)
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

from tests.hostile_input import (
    EDGE_DATETIMES,
    OVERFLOWING_DATETIMES,
    datetimes_anywhere,
    deeply_nested,
    with_lone_surrogate,
)

# About one generated body in ten is made hostile; the rest stay schema-valid for the other checks.
HOSTILE_SHARE = 10

EDGE_DATES = ("0001-01-01", "0001-01-02", "9999-12-30", "9999-12-31")

schemathesis.openapi.format(
    "date-time",
    st.sampled_from([value for value in EDGE_DATETIMES if "T" in value]) | datetimes_anywhere,
)
schemathesis.openapi.format("date", st.sampled_from(EDGE_DATES) | st.dates().map(str))


@schemathesis.hook
def flatmap_body(context: Any, body: Any) -> st.SearchStrategy:
    if not isinstance(body, (dict, list)):
        return st.just(body)
    document = st.just(body)
    hostile = deeply_nested(document) | with_lone_surrogate(document)
    # Hypothesis leans towards 0: the schema-valid body is the common case, hostile the rare one.
    return st.integers(0, HOSTILE_SHARE - 1).flatmap(
        lambda n: hostile if n == HOSTILE_SHARE - 1 else document
    )


def _error_of(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"A {response.status_code} without a JSON body: {response.content[:200]!r}")
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
        raise AssertionError(f"Not the JSON error body: {response.content[:200]!r}")
    return error


@schemathesis.check
def hostile_input_is_refused(ctx: Any, response: Any, case: Any) -> None:
    # Only the flatmap_body hook above makes raw bytes of a JSON body.
    hostile_body = isinstance(case.body, bytes)
    overflowing = [name for name, value in (case.query or {}).items() if str(value) in OVERFLOWING_DATETIMES]
    if not hostile_body and not overflowing:
        return
    if not 400 <= response.status_code < 500:
        raise AssertionError(f"Hostile input answered {response.status_code}, not a 4xx.")
    error = _error_of(response)
    # Another bad part of the request (an unknown id, a query parameter checked
    # before the body is read) may be refused first; a field-by-field validation
    # error must name the overflowing parameter among the others.
    if error["code"] == "validation_error" and overflowing and not set(overflowing) & set(error["details"]):
        raise AssertionError(f"The 400 does not name the overflowing parameter {overflowing}: {error}")
