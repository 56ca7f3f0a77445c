"""Guards around Jinja2's filters and tests and the methods of strings."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter

from templates_app.sandbox.formatting import check_printf
from templates_app.sandbox.limits import (
    CHARS_PER_UNIT,
    UNITS_PER_ITEM,
    charge,
    check_printable,
    check_size,
    measure,
)
from templates_app.sandbox.values import TEXT, check_args, check_result, is_int

# Filters that turn their input into text (soft_str, json, pformat …): measured first.
_TEXT_FILTERS = frozenset(
    {
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "format",
        "indent",
        "lower",
        "pprint",
        "replace",
        "string",
        "striptags",
        "title",
        "tojson",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "wordwrap",
        "xmlattr",
    }
)
# Filters whose integer arguments are widths or counts.
_SIZE_ARG_FILTERS = frozenset({"batch", "center", "indent", "slice", "tojson", "truncate", "wordwrap"})
# Text filters written in Python that work character by character: units per character.
_SLOW_TEXT_FILTERS = {"urlize": 50, "wordwrap": 50, "striptags": 8, "title": 8, "wordcount": 8}
# Filters that compare or hash their items, and whether they sort them.
_COMPARING_FILTERS = {
    "dictsort": True,
    "groupby": True,
    "max": False,
    "min": False,
    "sort": True,
    "unique": False,
}
# Filters that look at one item, whatever the size of their input.
_CONSTANT_FILTERS = frozenset(
    {"abs", "attr", "count", "d", "default", "filesizeformat", "first", "float", "int", "length", "random"}
    | {"round", "safe"}
)


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else measure(value).size


def _check_indent(arguments: dict[str, Any]) -> None:
    width = arguments["width"]
    prefix = len(width) if isinstance(width, str) else width if is_int(width) else 0
    text = arguments["s"]
    lines = (text.count("\n") if isinstance(text, str) else 0) + 1
    check_size(_text_len(text) + lines * prefix, "indent would build more")


def _check_wordwrap(arguments: dict[str, Any]) -> None:
    wrapstring = arguments["wrapstring"]
    # At worst every character ends a line.
    size = _text_len(arguments["s"])
    check_size(size * (1 + len(wrapstring if wrapstring is not None else "\n")), "wordwrap would build more")


def _check_replace(arguments: dict[str, Any]) -> None:
    check_replace(arguments["s"], arguments["old"], arguments["new"])


def check_replace(text: Any, old: Any, new: Any) -> None:
    # bytes too: templates cannot make bytes (see `check_string_method`), but the data given might.
    if not all(isinstance(value, str) for value in (text, old, new)) and not all(
        isinstance(value, bytes | bytearray) for value in (text, old, new)
    ):
        return
    growth = text.count(old) * len(new) if old else (len(text) + 1) * len(new)
    check_size(len(text) + growth, "replace would build more")


def _check_format_filter(arguments: dict[str, Any]) -> None:
    check_printf(str(arguments["value"]), arguments["kwargs"] or arguments["args"])


def _check_join(arguments: dict[str, Any], environment: Any) -> None:
    """Materialize the items (a `map` is lazy), measure them, and hand the list on."""
    items = arguments["value"]
    if arguments["attribute"] is not None:
        items = map(make_attrgetter(environment, arguments["attribute"]), items)
        arguments["attribute"] = None
    items = check_join_items(items, separator=arguments["d"])
    arguments["value"] = items


def check_join_items(items: Iterable[Any], *, separator: Any) -> list[Any]:
    materialized = []
    total = 0
    sep = len(separator) if isinstance(separator, TEXT) else measure(separator).size
    for item in items:
        total += check_printable(item, "a joined item").size + sep
        check_size(total, "join would build more")
        materialized.append(item)
    return materialized


def _check_sum(arguments: dict[str, Any]) -> None:
    start = arguments["start"]
    if not isinstance(start, int | float):
        # Adding lists or strings one by one copies the whole sum each time.
        raise SecurityError("sum() may only add numbers in a template")


def _check_tojson(arguments: dict[str, Any]) -> None:
    indent = arguments["indent"]
    if is_int(indent) and indent > 0:
        found = measure(arguments["value"])
        # Each line is indented once per level of nesting.
        check_size(found.size + found.visited * found.depth * indent, "tojson would build more")


def _check_pprint(arguments: dict[str, Any]) -> None:
    found = measure(arguments["value"])
    check_size(found.size + found.visited * (found.depth + 1), "pprint would build more")


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "replace": _check_replace,
    "format": _check_format_filter,
    "sum": _check_sum,
    "tojson": _check_tojson,
    "pprint": _check_pprint,
}


def guard_filter(environment: Any, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(func)  # of the filter itself, behind Jinja2's async wrapper
    # Jinja2's async wrapper of a filter that takes no context still takes an eval context first.
    lead = (
        1
        if getattr(func, "jinja_pass_arg", None) and not hasattr(inspect.unwrap(func), "jinja_pass_arg")
        else 0
    )
    # Filters taking the context or environment get it before the value.
    value_param = list(signature.parameters)[1 if lead == 0 and getattr(func, "jinja_pass_arg", None) else 0]
    check = _FILTER_CHECKS.get(name)
    per_char = _SLOW_TEXT_FILTERS.get(name, 0)

    @functools.wraps(func)  # keeps jinja_pass_arg, so context-taking filters still get it
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args[lead:], **kwargs)
        except TypeError as exc:
            raise TypeError(f"{name}: {exc}") from None
        bound.apply_defaults()
        arguments = bound.arguments
        value = arguments[value_param]
        if name in _TEXT_FILTERS:
            found = check_printable(value, f"the input of {name}")
            # Turning a list or a mapping into text (pprint, tojson, xmlattr) is Python work per item.
            charge(found.size * per_char + (0 if isinstance(value, str) else found.visited * UNITS_PER_ITEM))
        elif name in _CONSTANT_FILTERS:
            charge(1)
        else:
            # sort, batch, unique … walk every item; a lazy input is charged as it is consumed.
            charge(UNITS_PER_ITEM * len(value) if isinstance(value, Sized) else 1)
        if name in _COMPARING_FILTERS:
            _charge_comparisons(arguments, value_param, sorts=_COMPARING_FILTERS[name])
        if name in _SIZE_ARG_FILTERS:
            check_args(v for k, v in arguments.items() if k != value_param)
        if name == "join":
            _check_join(arguments, environment)
        elif check is not None:
            check(arguments)
        result = check_result(func(*args[:lead], *bound.args, **bound.kwargs))
        # map, select, batch … are lazy: each item they produce is charged when it is used.
        return _charged_items(result) if isinstance(result, Iterator) else result

    return guarded


def _charge_comparisons(arguments: dict[str, Any], value_param: str, *, sorts: bool) -> None:
    """Comparing or hashing items walks each one whole, however little it cost to build.

    A lazy input is listed first (charged per item) so its items can be measured.
    """
    value = arguments[value_param]
    if not isinstance(value, Sized):
        items = []
        for item in value:
            charge(UNITS_PER_ITEM)
            items.append(item)
            check_size(len(items))
        value = arguments[value_param] = items
    # Sorting compares each item about log2(n) times.
    rounds = max(1, len(value).bit_length()) if sorts else 1
    charge(compare_units(value) * rounds)


def _charged_items(items: Iterator[Any]) -> Iterator[Any]:
    for item in items:
        charge(UNITS_PER_ITEM)
        yield item


# translate() maps one character to any text; encode() and decode() make bytes, whose
# methods the sandbox does not bound, and some codecs (punycode) take quadratic time.
_REFUSED_STRING_METHODS = frozenset({"translate", "encode", "decode"})


def check_string_method(owner: str | bytes | bytearray, name: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Refuse the str methods whose output can dwarf their input, before they run.

    Returns the arguments to call with (`join` gets its items as a list).
    """
    charge(1 + len(owner) // CHARS_PER_UNIT)
    if name in _REFUSED_STRING_METHODS:
        raise SecurityError(f"{name}() is not available in templates")
    check_args(args)
    if name == "replace" and len(args) >= 2:
        check_replace(owner, args[0], args[1])
    elif name == "join" and args:
        return (check_join_items(args[0], separator=owner), *args[1:])
    elif name == "expandtabs":
        tabsize = args[0] if args and is_int(args[0]) else 8
        check_size(len(owner) + owner.count("\t" if isinstance(owner, str) else b"\t") * tabsize)
    return args


def compare_units(value: Any) -> int:
    found = measure(value)
    return found.visited + found.size // 8  # comparing and searching item by item costs more than copying


def guard_test(func: Callable[..., Any]) -> Callable[..., Any]:
    """Tests (`is in`, `is eq` …) compare and search too: charged by the size of what they look at."""

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        charge(sum(compare_units(arg) for arg in (*args, *kwargs.values())))
        return func(*args, **kwargs)

    return guarded
