"""What every guarded operation checks on the values a template builds."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sized
from typing import Any

from templates_app.sandbox.limits import (
    CHARS_PER_UNIT,
    MAX_INT_ARG,
    MAX_INT_BITS,
    MAX_RANGE,
    Limit,
    TemplateLimitError,
    charge,
    check_size,
    measure,
)

TEXT = (str, bytes, bytearray)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_result(value: Any) -> Any:
    """Cap, and charge for, a value just built."""
    if is_int(value):
        if value.bit_length() > MAX_INT_BITS:
            raise TemplateLimitError(Limit.NUMBER_SIZE, "the template builds a number too large")
    elif isinstance(value, TEXT):
        charge(1 + len(value) // CHARS_PER_UNIT)
        check_size(len(value))
    elif isinstance(value, Collection | Mapping):
        # By the size it prints as, not its length: `((t,) * 150,) * 150` is 150 items that
        # each hold the same big `t`, and hashing or comparing it walks every copy.
        found = measure(value)
        charge(1 + found.units)
        check_size(found.size, "the value would hold more once its parts are counted out")
    elif isinstance(value, Sized):
        charge(1 + len(value))
        check_size(len(value))
    return value


def check_args(args: Iterable[Any]) -> None:
    """Widths and counts (`center(n)`, `zfill(n)`, `batch(n)` …) are bounded."""
    for arg in args:
        if is_int(arg) and abs(arg) > MAX_INT_ARG:
            raise TemplateLimitError(Limit.NUMBER_SIZE, f"{arg} is too large")


def safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise TemplateLimitError(Limit.RANGE_SIZE)
    return rng
