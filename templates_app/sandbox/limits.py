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
    visited: int  # objects looked at to find out
    depth: int  # deepest nesting of containers seen

    @property
    def units(self) -> int:
        return self.visited + self.size // CHARS_PER_UNIT


def measure(value: Any, *, cap: int = MAX_VALUE_CHARS) -> Measure:
    """How big `value` is once printed, stopping as soon as it is past `cap`.

    Every object adds at least one to the size, so the walk stops after at
    most `cap` objects, whatever the value (shared or self-referencing parts
    included): measuring is bounded too.
    """
    size = visited = depth = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and size <= cap:
        item, level = stack.pop()
        visited += 1
        depth = max(depth, level)
        children: Any = ()
        if isinstance(item, str | bytes | bytearray):
            size += len(item)
        elif isinstance(item, Undefined) or item is None or isinstance(item, bool):
            size += 5
        elif isinstance(item, int):
            size += item.bit_length() // 3 + 1  # at least its decimal digits
        elif isinstance(item, float):
            size += 24
        elif isinstance(item, Mapping | Namespace):
            mapping = item._Namespace__attrs if isinstance(item, Namespace) else item
            size += 2 + 4 * len(mapping)
            children = (*mapping.keys(), *mapping.values()) if size <= cap else ()
        elif isinstance(item, Collection):
            size += 2 + 2 * len(item)
            children = item if size <= cap else ()
        else:
            size += 16  # generators, loop and cycler objects: a short repr
        stack.extend((child, level + 1) for child in children)
    return Measure(size=size, visited=visited, depth=depth)


def check_printable(value: Any, what: str = "") -> Measure:
    """Refuse, before it is turned into text, a value that would print as too much; charge the look."""
    if isinstance(value, str):
        charge(1)
        check_size(len(value), what)
        return Measure(size=len(value), visited=1, depth=0)
    found = measure(value)
    charge(found.units)
    check_size(found.size, what)
    return found
