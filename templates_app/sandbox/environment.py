"""The environment: Jinja2's immutable sandbox, with every way to do work guarded."""

from __future__ import annotations

import functools
import operator
import types
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from templates_app.sandbox.filters import check_string_method, compare_units, guard_filter, guard_test
from templates_app.sandbox.formatting import BoundedEscapeFormatter, BoundedFormatter, check_printf
from templates_app.sandbox.limits import (
    MAX_INT_BITS,
    Limit,
    TemplateLimitError,
    charge,
    charge_iteration,
    check_printable,
    check_size,
)
from templates_app.sandbox.values import TEXT, check_args, check_result, is_int, safe_range


def _finalize(value: Any) -> Any:
    """Every `{{ value }}` printed: measured before it becomes text."""
    check_printable(value, "a printed value")
    return value


class _CountedIterable:
    """What a template loop iterates: the items, each iteration charged to the budget."""

    __slots__ = ("_items", "_steps")

    def __init__(self, items: Any, steps: int) -> None:
        self._items = items
        self._steps = steps

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            charge_iteration(self._steps)
            yield item

    def __len__(self) -> int:
        return len(self._items)  # TypeError for a generator: `loop.length` then lists it


def _body_steps(node: nodes.For) -> int:
    parts = [*node.body, *([node.test] if node.test is not None else [])]
    return 1 + sum(1 + sum(1 for _ in part.find_all(nodes.Node)) for part in parts)


class _Instrument(NodeTransformer):
    """Route loops, comparisons, `~` and literals through the environment's guards."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("guard_loop"),
            [node.iter, nodes.Const(_body_steps(node))],
            [],
            None,
            None,
            lineno=node.lineno,
        )
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        args: list[nodes.Expr] = [node.expr]
        for operand in node.ops:
            args += [nodes.Const(operand.op), operand.expr]
        return nodes.Call(
            nodes.EnvironmentAttribute("guard_compare"), args, [], None, None, lineno=node.lineno
        )

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        self.generic_visit(node)
        if node.ctx != "load":  # `{% for a, b in … %}`, `{% set a, b = … %}`: names, not a value
            return node
        return nodes.Call(
            nodes.EnvironmentAttribute("guard_value"), [node], [], None, None, lineno=node.lineno
        )

    def visit_List(self, node: nodes.List) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.EnvironmentAttribute("guard_value"), [node], [], None, None, lineno=node.lineno
        )

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:
        self.generic_visit(node)
        args: list[nodes.Expr] = []
        for pair in node.items:
            args += [pair.key, pair.value]
        return nodes.Call(nodes.EnvironmentAttribute("guard_dict"), args, [], None, None, lineno=node.lineno)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(
            nodes.EnvironmentAttribute("guard_concat"), list(node.nodes), [], None, None, lineno=node.lineno
        )


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


def _power_too_big(base: Any, exponent: Any) -> bool:
    if not (is_int(base) and is_int(exponent)) or exponent <= 0:
        return False
    return max(base.bit_length(), 1) * exponent > MAX_INT_BITS


def _repeat_size(seq: Any, times: Any) -> int:
    if isinstance(seq, (*TEXT, list, tuple)) and is_int(times):
        return len(seq) * times
    return 0


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """No mutation of given data, no internals (`__class__`, `mro` …), bounded work."""

    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def __init__(self, **kwargs: Any) -> None:
        # No constant folding: nothing guarded may run before the render, and folding long
        # filter chains is quadratic at compile time.
        super().__init__(finalize=_finalize, optimized=False, **kwargs)
        # lipsum() writes text by the kilobyte; the other globals are harmless.
        self.globals = {**{k: v for k, v in self.globals.items() if k != "lipsum"}, "range": safe_range}
        self.filters = {name: guard_filter(self, name, func) for name, func in self.filters.items()}
        self.tests = {name: guard_test(func) for name, func in self.tests.items()}

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        ast = _Instrument().visit(super()._parse(source, name, filename))
        ast.set_environment(self)
        return ast

    # Called by the rewritten template (see `_Instrument`).
    def guard_loop(self, items: Any, steps: int) -> _CountedIterable:
        return _CountedIterable(items, steps)

    def guard_compare(self, first: Any, *chain: Any) -> Any:
        """`a == b`, `a in b` …: comparing or searching big values costs in proportion to their size."""
        charge(sum(compare_units(value) for value in (first, *chain[1::2])))
        result = left = first
        for op, right in zip(chain[::2], chain[1::2], strict=True):
            result = _COMPARISONS[op](left, right)
            if not result:
                return result
            left = right
        return result

    def guard_value(self, value: Any) -> Any:
        """A tuple or list literal: `(t, t, t)` holds three copies of `t` once walked."""
        return check_result(value)

    def guard_dict(self, *items: Any) -> dict[Any, Any]:
        """A dict literal: each key is hashed, which walks all of a tuple key."""
        keys = items[::2]
        charge(sum(compare_units(key) for key in keys if not isinstance(key, str | int)))
        return check_result(dict(zip(keys, items[1::2], strict=True)))

    def getitem(self, obj: Any, argument: Any) -> Any:
        """`d[key]` hashes the key (a tuple all the way down) and compares it on a match."""
        if not isinstance(argument, str | int | slice):
            charge(compare_units(argument))
        return super().getitem(obj, argument)

    def guard_concat(self, *values: Any) -> str:
        total = sum(check_printable(value, "a value joined with ~").size for value in values)
        check_size(total, "~ would build more")
        return check_result("".join(map(str, values)))

    def concat(self, parts: Iterable[str]) -> str:  # type: ignore[override]
        """The body of a `{% set %}` or `{% filter %}` block, capped like any value."""
        collected = []
        total = 0
        for part in parts:
            total += len(part)
            check_size(total, "a {% set %} or {% filter %} block would build more")
            collected.append(part)
        return check_result("".join(collected))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _power_too_big(left, right):
            raise TemplateLimitError(Limit.NUMBER_SIZE, "the template builds a number too large")
        if operator == "*":
            check_size(max(_repeat_size(left, right), _repeat_size(right, left)), "* would build more")
        elif operator == "+" and isinstance(left, Sized) and isinstance(right, Sized):
            check_size(len(left) + len(right), "+ would build more")
        elif operator == "%" and isinstance(left, TEXT):
            check_printf(left, right)
        return check_result(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """str.format and format_map, as the sandbox has them, through a formatter that bounds them."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        formatter: BoundedFormatter
        if isinstance(owner, Markup):
            formatter = BoundedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = BoundedFormatter(self)
        is_format_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                args, kwargs = (), args[0]
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(wrapper, value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(__obj, "__self__", None) is __self:  # guard_loop, guard_concat
            # Inside loops and blocks Jinja2 passes these for the context; the guards need neither.
            return __obj(*args)
        target = getattr(__obj, "__wrapped__", __obj)  # str.format arrives wrapped (see above)
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, TEXT) and name not in ("format", "format_map"):
            args = check_string_method(owner, name, args)
            check_args(kwargs.values())
        elif owner is not None and not is_int(owner) and not isinstance(owner, float):
            # loop.changed(x), d.get(key), items.count(x), items.index(x): each compares or
            # hashes its arguments, and count and index walk the whole list too.
            charge(sum(compare_units(arg) for arg in (*args, *kwargs.values())))
            if isinstance(owner, list | tuple) and name in ("count", "index"):
                charge(compare_units(owner))
        elif is_int(owner) or isinstance(owner, float):
            if name == "to_bytes":
                # Templates make no bytes (see check_string_method): their methods are not bounded.
                raise SecurityError("to_bytes() is not available in templates")
            check_args((*args, *kwargs.values()))
        return check_result(super().call(__context, __obj, *args, **kwargs))
