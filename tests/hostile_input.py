"""Hypothesis strategies for hostile input: JSON nested far too deep, lone UTF-16
surrogates, and date-times at the ends of the calendar with extreme UTC offsets.

Shared by the API and webhook property tests and by the schemathesis hooks of
bench.schema_fuzz, so all of them aim at the same class of input.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

# The probe's body: about 120 KB, under the API's 256 KiB limit.
PROBE_DEPTH = 60_000
# Deeper than any JSON parser here accepts (icmp.strict_json.MAX_DEPTH is 64).
MIN_HOSTILE_DEPTH = 65
_HOLE = "\x00hostile-hole\x00"
_HOLE_JSON = json.dumps(_HOLE)

LONE_SURROGATES = st.integers(0xD800, 0xDFFF).map(chr)

# Values a parser must turn into 400, never into an OverflowError: they only exist
# in their own time zone, and are out of datetime's range once converted to UTC.
OVERFLOWING_DATETIMES = (
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00.000001+23:59",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999-23:59",
)
EDGE_DATETIMES = (
    *OVERFLOWING_DATETIMES,
    "0001-01-01T00:00:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999",
    "9999-12-31T23:59:59Z",
    "0001-01-01",
    "9999-12-31",
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _written(moment: datetime, offset: int | str | None) -> str:
    text = moment.isoformat()
    if offset is None:
        return text
    return text + (offset if isinstance(offset, str) else _offset(offset))


# Any date-time Python can write, naive or with any offset it can parse (up to ±23:59),
# the calendar's ends drawn often.
datetimes_anywhere = st.builds(
    _written,
    st.datetimes(min_value=datetime.min, max_value=datetime.max),
    st.none() | st.just("Z") | st.integers(-(24 * 60 - 1), 24 * 60 - 1),
)
date_times = st.sampled_from(EDGE_DATETIMES) | datetimes_anywhere

_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
json_objects = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        _JSON_SCALARS,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
        ),
        max_leaves=8,
    ),
    max_size=4,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out.extend(_paths(child, (*prefix, key)))
    return out


def _replace(document: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return document


@st.composite
def deeply_nested(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> bytes:
    """A document with one value (or itself) replaced by arrays nested too deep to parse."""
    document = json.loads(json.dumps(draw(documents)))
    path = draw(st.sampled_from(_paths(document)))
    depth = draw(
        st.sampled_from([MIN_HOSTILE_DEPTH, 1_000, PROBE_DEPTH]) | st.integers(MIN_HOSTILE_DEPTH, 5_000)
    )
    text = json.dumps(_replace(document, path, _HOLE))
    return text.replace(_HOLE_JSON, nested(depth), 1).encode()


@st.composite
def with_lone_surrogate(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> bytes:
    """A document with a lone surrogate in one string: a value, or a key of an object in it."""
    document = json.loads(json.dumps(draw(documents)))
    surrogate = draw(LONE_SURROGATES)
    text = draw(st.text(max_size=3))
    spot = draw(st.integers(0, len(text)))
    poisoned = text[:spot] + surrogate + text[spot:]
    objects = [path for path in _paths(document) if isinstance(_at(document, path), dict)]
    if objects and draw(st.booleans()):
        _at(document, draw(st.sampled_from(objects)))[poisoned] = "x"
    else:
        document = _replace(document, draw(st.sampled_from(_paths(document))), poisoned)
    # json.dumps escapes it as \\udXXX: the bytes are ASCII, the decoded string is not Unicode.
    return json.dumps(document).encode()


def _at(document: Any, path: tuple) -> Any:
    for key in path:
        document = document[key]
    return document


def hostile_bodies(documents: st.SearchStrategy[Any] = json_objects) -> st.SearchStrategy[bytes]:
    return deeply_nested(documents) | with_lone_surrogate(documents)
