"""Token and cost usage of a business: the LLMCall ledger aggregated by day, stage and model.

Every figure is one aggregate query over the business's rows in a time range,
served by the (business, -created_at) index; no row is loaded into Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from businesses.models import Business
from conversations.models import LLMCall
from icmp.datetimes import to_utc

GROUPINGS = ("day", "stage", "model")
DEFAULT_GROUPING = "day"
DEFAULT_PERIOD = timedelta(days=30)
NO_STAGE_KEY = "none"
NO_STAGE_NAME = "No stage"

# A call that reported usage but has no cost was made with a model missing from
# LLM_PRICES: the summed cost is then a lower bound. Failed calls without usage
# were not billed, so their null cost leaves the sum complete (as in a turn's total).
_UNPRICED = Q(cost__isnull=True) & (Q(prompt_tokens__isnull=False) | Q(completion_tokens__isnull=False))
# Aliases must not shadow the fields they sum (or `filter=` would see the aggregate).
_AGGREGATES = {
    "n_calls": Count("id"),
    "sum_prompt_tokens": Sum("prompt_tokens"),
    "sum_completion_tokens": Sum("completion_tokens"),
    "sum_cached_tokens": Sum("cached_tokens"),
    "sum_cost": Sum("cost"),
    "n_unpriced": Count("id", filter=_UNPRICED),
}


@dataclass(frozen=True)
class UsagePeriod:
    """[since, until): `until` is exclusive."""

    since: datetime
    until: datetime


def usage_bound_parse(value: str, *, end: bool) -> datetime:
    """An ISO 8601 date or date-time as an aware datetime (naive means UTC).

    A bare date as the end of a range includes that whole day (UTC).
    Raises ValueError with a message for the client.
    """
    value = (value or "").strip()
    try:
        # Date first: parse_datetime also accepts a bare date (as midnight).
        day = parse_date(value)
        moment = None if day is not None else parse_datetime(value)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        moment = day = None
    if moment is None and day is None:
        raise ValueError(f"{value!r} is not an ISO 8601 date (YYYY-MM-DD) or date-time.")
    if moment is None:
        assert isinstance(day, date)
        try:
            moment = datetime.combine(day + timedelta(days=1) if end else day, time.min, tzinfo=UTC)
        except OverflowError:  # 9999-12-31 as an end
            raise ValueError(f"{value!r} is out of range.")
    try:
        return to_utc(moment)
    except ValueError:  # e.g. 0001-01-01T00:00:00+14:00
        raise ValueError(f"{value!r} is out of range once converted to UTC.")


class UsagePeriodError(ValueError):
    """A period that cannot be served; `field` names the parameter at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def usage_period(
    *, since: datetime | None, until: datetime | None, now: datetime | None = None
) -> UsagePeriod:
    """The period asked for, defaulting to the 30 days before `until` (itself defaulting to now)."""
    until = until or now or timezone.now()
    if since is None:
        try:
            since = until - DEFAULT_PERIOD
        except OverflowError:
            raise UsagePeriodError(
                "until is too early for the default 30-day period; give since as well.", field="until"
            )
    if since >= until:
        raise UsagePeriodError("since must be before until.", field="since")
    return UsagePeriod(since=since, until=until)


def usage_calls(
    *, business: Business, period: UsagePeriod, include_dry_run: bool = False
) -> QuerySet[LLMCall]:
    calls = LLMCall.objects.filter(
        business=business, created_at__gte=period.since, created_at__lt=period.until
    )
    if not include_dry_run:
        calls = calls.filter(dry_run=False)
    # No ordering: Meta.ordering must not reach the GROUP BY or force a sort.
    return calls.order_by()


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "calls": row["n_calls"],
        "prompt_tokens": row["sum_prompt_tokens"] or 0,
        "completion_tokens": row["sum_completion_tokens"] or 0,
        "cached_tokens": row["sum_cached_tokens"] or 0,
        "cost": row["sum_cost"] if row["sum_cost"] is not None else Decimal(0),
        "cost_complete": row["n_unpriced"] == 0,
        "unpriced_calls": row["n_unpriced"],
    }


def _by_day(calls: QuerySet[LLMCall]) -> list[dict[str, Any]]:
    rows = (
        calls.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(**_AGGREGATES)
        .order_by("day")
    )
    return [{"day": row["day"], **_figures(row)} for row in rows]


def _by_stage(calls: QuerySet[LLMCall]) -> list[dict[str, Any]]:
    rows = (
        calls.values("stage_id", "stage__key", "stage__name")
        .annotate(**_AGGREGATES)
        .order_by("-n_calls", F("stage__key").asc(nulls_last=True))
    )
    return [
        {
            "stage": row["stage_id"],
            "key": row["stage__key"] if row["stage_id"] is not None else NO_STAGE_KEY,
            "name": row["stage__name"] if row["stage_id"] is not None else NO_STAGE_NAME,
            **_figures(row),
        }
        for row in rows
    ]


def _by_model(calls: QuerySet[LLMCall]) -> list[dict[str, Any]]:
    rows = calls.values("model").annotate(**_AGGREGATES).order_by("-n_calls", "model")
    return [{"model": row["model"], **_figures(row)} for row in rows]


_GROUPERS = {"day": _by_day, "stage": _by_stage, "model": _by_model}


def usage_summary(
    *,
    business: Business,
    period: UsagePeriod,
    group_by: Sequence[str] = (DEFAULT_GROUPING,),
    include_dry_run: bool = False,
) -> dict[str, Any]:
    """Totals for the period, plus `by_<grouping>` lists for the groupings asked for.

    `cost` sums the known costs; `cost_complete` is false when some call that
    reported usage had no price (its model is missing from LLM_PRICES).
    """
    unknown = [g for g in group_by if g not in _GROUPERS]
    if unknown:
        raise ValueError(f"Unknown grouping {unknown[0]!r}; choose from {', '.join(GROUPINGS)}.")
    calls = usage_calls(business=business, period=period, include_dry_run=include_dry_run)
    summary: dict[str, Any] = {
        "since": period.since,
        "until": period.until,
        "dry_run_included": include_dry_run,
        "totals": _figures(calls.aggregate(**_AGGREGATES)),
    }
    for grouping in dict.fromkeys(group_by):
        summary[f"by_{grouping}"] = _GROUPERS[grouping](calls)
    return summary
