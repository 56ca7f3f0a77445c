"""Date-times from outside, made safe to compare and store."""

from __future__ import annotations

from datetime import UTC, datetime


def to_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime (naive means UTC already).

    Raises ValueError when that falls outside datetime's years 1 to 9999: a
    moment written in its own time zone near either end, such as
    0001-01-01T00:00:00+14:00, has no UTC equivalent, and the database driver
    would raise OverflowError (a 500) converting it.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("Out of range once converted to UTC.")
