"""The limits on what one render of a tenant's template may build and do.

Templates run on shared workers, so every render is bounded by counting, never
by timing: each value the template builds is capped in size, loops share one
iteration count, and everything the sandbox does (values built, values turned
into text, steps of loop bodies) is charged to one work budget. A template that
hits a limit fails with a `TemplateLimitError` naming the limit, at save time on
sample data and at render time on real data alike.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined
from jinja2.utils import Namespace

MAX_TEMPLATE_CHARS = 20_000
# Names, literals, operators and text runs: what compiling costs grows with them (about
# 0.15 ms each), so a template may hold five times the largest platform default.
MAX_TEMPLATE_TOKENS = 3_000
MAX_RENDERED_CHARS = 60_000
# Any one value a template builds (a string, a list, a formatted or joined text).
MAX_VALUE_CHARS = 60_000
MAX_RANGE = 1_000
MAX_LOOP_NESTING = 2
# Iterations of all loops together in one render.
MAX_LOOP_ITERATIONS = 5_000
# Work units of one render; one unit is roughly a tenth of a microsecond of work.
MAX_RENDER_WORK = 2_000_000
MAX_INT_ARG = 10_000
MAX_INT_BITS = 4_096

# What one unit of work buys, by kind of work (see `charge`).
CHARS_PER_UNIT = 16  # characters copied or scanned by C code
UNITS_PER_ITEM = 30  # each item a filter walks in Python (sort, batch, map …)
UNITS_PER_LOOP_NODE = 10  # each template node of a loop body, each iteration


class Limit(StrEnum):
    TEMPLATE_LENGTH = "template_length"
    TEMPLATE_TOKENS = "template_tokens"
    VALUE_SIZE = "value_size"
    OUTPUT_SIZE = "output_size"
    LOOP_ITERATIONS = "loop_iterations"
    LOOP_NESTING = "loop_nesting"
    NESTING_DEPTH = "nesting_depth"
    RENDER_WORK = "render_work"
    RANGE_SIZE = "range_size"
    NUMBER_SIZE = "number_size"

    @property
    def code(self) -> str:
        """The API error code of a template refused for this limit."""
        return f"{self.value}_limit"


LIMIT_RULES: dict[Limit, str] = {
    Limit.TEMPLATE_LENGTH: f"a template may be at most {MAX_TEMPLATE_CHARS} characters long",
    Limit.TEMPLATE_TOKENS: (
        f"a template may hold at most {MAX_TEMPLATE_TOKENS} names, literals, operators and text runs"
    ),
    Limit.VALUE_SIZE: f"a value the template builds may hold at most {MAX_VALUE_CHARS} characters or items",
    Limit.OUTPUT_SIZE: f"the rendered text may be at most {MAX_RENDERED_CHARS} characters long",
    Limit.LOOP_ITERATIONS: f"all loops of a template may run at most {MAX_LOOP_ITERATIONS} iterations in all",
    Limit.LOOP_NESTING: f"loops may be nested at most {MAX_LOOP_NESTING} deep",
    Limit.NESTING_DEPTH: "expressions and tags may not be nested this deep",
    Limit.RENDER_WORK: (
        f"a render may do at most {MAX_RENDER_WORK} units of work "
        "(steps of loop bodies, characters and items built or converted to text)"
    ),
    Limit.RANGE_SIZE: f"range() may produce at most {MAX_RANGE} items",
    Limit.NUMBER_SIZE: (
        f"widths, counts and precisions may not exceed {MAX_INT_ARG}, "
        f"and numbers may not exceed {MAX_INT_BITS} bits"
    ),
}


class TemplateLimitError(SecurityError):
    """A template asked for more than a limit allows; `limit` names which."""

    def __init__(self, limit: Limit, what: str = "") -> None:
        self.limit = limit
        detail = f" ({what})" if what else ""
        super().__init__(f"{limit.value} limit: {LIMIT_RULES[limit]}{detail}.")


class _Budget:
    __slots__ = ("iterations", "work")

    def __init__(self) -> None:
        self.iterations = 0
        self.work = 0


_budget: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def work_budget() -> Iterator[None]:
    """One budget for the render that runs inside."""
    token = _budget.set(_Budget())
    try:
        yield
    finally:
        _budget.reset(token)


def _current() -> _Budget:
    budget = _budget.get()
    if budget is None:
        # Outside a render: Jinja2 folding constant expressions while it compiles.
        # Nothing guarded runs unbudgeted; the expression is evaluated at render time.
        raise SecurityError("guarded operations run only while rendering")
    return budget


def charge(units: int) -> None:
    budget = _current()
    budget.work += units
    if budget.work > MAX_RENDER_WORK:
        raise TemplateLimitError(Limit.RENDER_WORK)


def charge_iteration(steps: int) -> None:
    """One loop iteration whose body has `steps` template nodes."""
    budget = _current()
    budget.iterations += 1
    if budget.iterations > MAX_LOOP_ITERATIONS:
        raise TemplateLimitError(Limit.LOOP_ITERATIONS)
    charge(steps * UNITS_PER_LOOP_NODE)


def check_size(size: int, what: str = "") -> None:
    if size > MAX_VALUE_CHARS:
        raise TemplateLimitError(Limit.VALUE_SIZE, what)


@dataclass(frozen=True)
class Measure:
    size: int  # about how many characters the value prints as
    visited: int  # objects in the value written out in full (a part held twice counts twice)
    depth: int  # deepest nesting of containers seen
    walked: int = 0  # objects looked at to find out

    @property
    def units(self) -> int:
        """What measuring cost."""
        return self.walked + self.size // CHARS_PER_UNIT


def _own_size(item: Any) -> tuple[int, Any]:
    """The characters `item` adds by itself, and its parts (None for a value without any)."""
    if isinstance(item, str | bytes | bytearray):
        return len(item), None
    if isinstance(item, Undefined) or item is None or isinstance(item, bool):
        return 5, None
    if isinstance(item, int):
        return item.bit_length() // 3 + 1, None  # at least its decimal digits
    if isinstance(item, float):
        return 24, None
    if isinstance(item, Mapping | Namespace):
        mapping = item._Namespace__attrs if isinstance(item, Namespace) else item
        return 2 + 4 * len(mapping), mapping
    if isinstance(item, Collection):
        return 2 + 2 * len(item), item
    return 16, None  # generators, loop and cycler objects: a short repr


_END = object()


def measure(value: Any, *, cap: int = MAX_VALUE_CHARS) -> Measure:
    """How big `value` is once printed, stopping as soon as it is past `cap`.

    The size is that of the value written out in full: a part the value holds many
    times (`((t,) * 150,) * 150`) counts each time, as printing, hashing or comparing
    the value walks it each time. Each container is looked into once, though, and
    every object adds at least one to the size, so measuring looks at no more than
    `cap` objects, whatever the value (shared or self-referencing parts included).
    """
    known: dict[int, tuple[int, int, int]] = {}  # id of a container measured -> size, count, depth
    held: list[Any] = []  # keeps the containers in `known` alive, so their ids stay theirs
    on_stack: set[int] = set()
    total = walked = 0
    # Frames: a container, an iterator over its parts, and its size, count and depth so far.
    root: list[Any] = [None, iter((value,)), 0, 0, 0]
    stack = [root]
    while stack and total <= cap:
        frame = stack[-1]
        part = next(frame[1], _END)
        if part is _END:
            stack.pop()
            if stack:
                item, _, size, count, depth = frame
                on_stack.discard(id(item))
                known[id(item)] = (size, count, depth)
                held.append(item)
                _add(stack[-1], size, count, depth)
            continue
        walked += 1
        found = known.get(id(part))
        if found is not None:
            total += found[0]
            _add(frame, *found)
            continue
        size, parts = _own_size(part)
        total += size
        if parts is None or id(part) in on_stack:  # a value holding itself prints it as [...]
            _add(frame, size, 1, 0)
            continue
        if isinstance(parts, Mapping):
            parts = (*parts.keys(), *parts.values()) if total <= cap else ()
        on_stack.add(id(part))
        stack.append([part, iter(parts if total <= cap else ()), size, 1, 0])
    if stack:  # stopped past the cap: what was counted so far
        return Measure(size=total, visited=walked, depth=len(stack) - 1, walked=walked)
    return Measure(size=root[2], visited=root[3], depth=max(root[4] - 1, 0), walked=walked)


def _add(frame: list[Any], size: int, count: int, depth: int) -> None:
    frame[2] += size
    frame[3] += count
    frame[4] = max(frame[4], depth + 1)


def check_printable(value: Any, what: str = "") -> Measure:
    """Refuse, before it is turned into text, a value that would print as too much; charge the look."""
    if isinstance(value, str):
        charge(1)
        check_size(len(value), what)
        return Measure(size=len(value), visited=1, depth=0, walked=1)
    found = measure(value)
    charge(found.units)
    check_size(found.size, what)
    return found
