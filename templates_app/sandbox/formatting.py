"""Bounded printf-style (`%`) and `str.format` formatting."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2.sandbox import SandboxedFormatter
from markupsafe import EscapeFormatter

from templates_app.sandbox.limits import (
    CHARS_PER_UNIT,
    MAX_VALUE_CHARS,
    Limit,
    TemplateLimitError,
    charge,
    check_printable,
    check_size,
    measure,
)
from templates_app.sandbox.values import check_args

# One printf-style conversion: %(key)-08.3f, %*d, %%.
_PRINTF = re.compile(r"%(?:\(([^)]*)\))?[-+ #0]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)", re.DOTALL)
_NUMBER_CONVERSIONS = frozenset("diouxXeEfFgGc")
# repr() and ascii() can spell one character as up to ten (\U0001f600).
_REPR_GROWTH = {"r": 4, "a": 10}


def _printf_arg_size(arg: Any, conversion: str) -> int:
    if conversion in _NUMBER_CONVERSIONS:
        return 330 if isinstance(arg, float) else measure(arg).size  # %f of 1e308 has 309 digits
    return measure(arg).size * _REPR_GROWTH.get(conversion, 1)


def check_printf(fmt: str | bytes | bytearray, args: Any) -> None:
    """Refuse `fmt % args` when its result could exceed the value limit, before formatting."""
    text = fmt if isinstance(fmt, str) else bytes(fmt).decode("latin-1")
    total = len(text)
    position = 0
    for match in _PRINTF.finditer(text):
        key, width, precision, conversion = match.groups()
        if conversion == "%":
            continue
        if "*" in (width, precision):
            raise TemplateLimitError(Limit.NUMBER_SIZE, "'*' widths are not allowed in % formats")
        width_n, precision_n = int(width or 0), int(precision or 0)
        check_args((width_n, precision_n))
        if key is not None:
            arg = args.get(key) if isinstance(args, Mapping) else None
        elif isinstance(args, tuple):
            arg = args[position] if position < len(args) else None
            position += 1
        else:
            arg = args
        total += max(width_n, _printf_arg_size(arg, conversion) + precision_n)
        if total > MAX_VALUE_CHARS:
            raise TemplateLimitError(Limit.VALUE_SIZE, "the % format would build more")
    charge(1 + total // CHARS_PER_UNIT)


_DIGITS = re.compile(r"\d+")


class BoundedFormatter(SandboxedFormatter):
    """str.format with bounded field widths and a bounded result, checked field by field."""

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._built = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        check_args(int(digits) for digits in _DIGITS.findall(format_spec))
        check_printable(value, "a str.format field")
        field = super().format_field(value, format_spec)
        self._built += len(field)
        check_size(self._built, "str.format would build more")
        return field


class BoundedEscapeFormatter(BoundedFormatter, EscapeFormatter):
    pass
