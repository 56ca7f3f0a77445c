"""Usage at a glance: a business's messages, AI turns, handoffs, tokens and cost per day and stage.

Days are UTC days, as in GET /api/v1/usage/. Every figure comes from a handful
of aggregate queries over one business's rows in the period, each served by a
(business, created_at) index; no message or call is loaded into Python.

Definitions shown on the page:
- AI turn: a customer message (or burst) the AI worked on, i.e. a distinct
  triggering message with at least one (non-dry-run) LLM call that day.
- Handoff: a conversation handed to staff that day, seen from the messages that
  announce it (the AI's last reply before a handoff, the holding message) or
  from the conversation's current handoff time (a handoff without any message).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from businesses.models import Business
from conversations.models import Author, Conversation, Direction, Message
from conversations.usage import UsagePeriod, usage_calls, usage_summary

DAY_CHOICES = (7, 30, 90)
DEFAULT_DAYS = 30

CHART_WIDTH = 720
CHART_HEIGHT = 160
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 8, 10, 22
COLORS = {
    "in": "#79aec8",
    "out": "#417690",
    "turns": "#5b9b5b",
    "handoffs": "#ba2121",
    "prompt": "#9ab6d0",
    "completion": "#264b5d",
    "cost": "#d98b00",
}


def usage_days(value: Any) -> int:
    """The ?days= switch; anything but 7, 30 or 90 means the default."""
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_DAYS
    return days if days in DAY_CHOICES else DEFAULT_DAYS


def usage_page_period(*, days: int, now: datetime | None = None) -> UsagePeriod:
    """`days` whole UTC days ending with today."""
    today = (now or timezone.now()).astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    return UsagePeriod(
        since=datetime.combine(first, time.min, tzinfo=UTC),
        until=datetime.combine(today + timedelta(days=1), time.min, tzinfo=UTC),
    )


def _messages_by_day(business: Business, period: UsagePeriod) -> dict[date, dict[str, int]]:
    rows = (
        Message.objects.filter(business=business, created_at__gte=period.since, created_at__lt=period.until)
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(
            n_in=Count("id", filter=Q(direction=Direction.IN)),
            n_out=Count("id", filter=Q(direction=Direction.OUT)),
        )
    )
    return {row["day"]: {"in": row["n_in"], "out": row["n_out"]} for row in rows}


def _turns_by_day(business: Business, period: UsagePeriod) -> dict[date, int]:
    rows = (
        usage_calls(business=business, period=period)
        .filter(message__isnull=False)
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(turns=Count("message", distinct=True))
    )
    return {row["day"]: row["turns"] for row in rows}


def _handoffs_by_day(business: Business, period: UsagePeriod) -> dict[date, int]:
    # Handoffs are rare: the (day, conversation) pairs are few, and the union of
    # the two sources must not count one handoff twice.
    announced = (
        Message.objects.filter(
            business=business,
            created_at__gte=period.since,
            created_at__lt=period.until,
            direction=Direction.OUT,
        )
        .filter(Q(author=Author.SYSTEM) | Q(payload__announces_handoff=True))
        .order_by()
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values_list("day", "conversation_id")
        .distinct()
    )
    current = (
        Conversation.objects.filter(
            business=business,
            handoff_notified_at__gte=period.since,
            handoff_notified_at__lt=period.until,
        )
        .order_by()
        .annotate(day=TruncDate("handoff_notified_at", tzinfo=UTC))
        .values_list("day", "id")
    )
    pairs = set(announced) | set(current)
    counts: dict[date, int] = defaultdict(int)
    for day, _conversation in pairs:
        counts[day] += 1
    return counts


@dataclass
class Chart:
    """An SVG chart as numbers; the template draws it (and escapes every label)."""

    title: str
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    bars: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    x_labels: list[dict[str, Any]] = field(default_factory=list)
    y_labels: list[dict[str, Any]] = field(default_factory=list)
    legend: list[dict[str, str]] = field(default_factory=list)


def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value < 10 else f"{value:,.0f}"


def day_chart(
    *,
    title: str,
    days: list[date],
    bars: list[tuple[str, str, list[float]]] = (),
    line: tuple[str, str, list[float]] | None = None,
    stacked: bool = False,
) -> Chart:
    """Bars per day (side by side, or stacked) and optionally one line on the same scale."""
    chart = Chart(title=title)
    plot_w = chart.width - _LEFT - _RIGHT
    plot_h = chart.height - _TOP - _BOTTOM
    n = max(len(days), 1)
    slot = plot_w / n
    if stacked:
        peak = max([sum(values) for values in zip(*(v for _, _, v in bars), strict=True)] or [0])
    else:
        peak = max([max(v or [0]) for _, _, v in bars] or [0])
    if line is not None:
        peak = max(peak, max(line[2] or [0]))
    peak = peak or 1
    base = _TOP + plot_h

    def y_of(value: float) -> float:
        return base - plot_h * value / peak

    group_w = slot * 0.8
    for index, day in enumerate(days):
        x0 = _LEFT + index * slot + slot * 0.1
        stack = 0.0
        for position, (label, color, values) in enumerate(bars):
            value = values[index]
            if stacked:
                width, x = group_w, x0
                top, bottom = y_of(stack + value), y_of(stack)
                stack += value
            else:
                width = group_w / len(bars)
                x = x0 + position * width
                top, bottom = y_of(value), base
            if value:
                chart.bars.append(
                    {
                        "x": round(x, 1),
                        "y": round(top, 1),
                        "w": round(max(width - 0.5, 0.5), 1),
                        "h": round(max(bottom - top, 0.5), 1),
                        "fill": color,
                        "title": f"{day.isoformat()} {label}: {_fmt(value)}",
                    }
                )
    if line is not None:
        label, color, values = line
        points = [(_LEFT + (i + 0.5) * slot, y_of(v)) for i, v in enumerate(values)]
        chart.lines.append(
            {
                "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in points),
                "stroke": color,
                "dots": [
                    {
                        "x": round(x, 1),
                        "y": round(y, 1),
                        "title": f"{days[i].isoformat()} {label}: {_fmt(values[i])}",
                    }
                    for i, (x, y) in enumerate(points)
                ],
            }
        )
        chart.legend.append({"label": label, "color": color})
    chart.legend[:0] = [{"label": label, "color": color} for label, color, _ in bars]
    every = max(1, n // 10)
    chart.x_labels = [
        {
            "x": round(_LEFT + (i + 0.5) * slot, 1),
            "y": chart.height - 6,
            "text": day.strftime("%m-%d"),
            "anchor": "middle",
        }
        for i, day in enumerate(days)
        if i % every == 0 or i == n - 1
    ]
    chart.y_labels = [
        {
            "x": _LEFT - 4,
            "y": round(y_of(v), 1) + 4,
            "text": _fmt(v),
            "line_y": round(y_of(v), 1),
            "anchor": "end",
        }
        for v in (0, peak / 2, peak)
    ]
    return chart


def stage_chart(*, title: str, stages: list[dict[str, Any]]) -> Chart:
    """Horizontal bars: tokens per stage."""
    row_h = 22
    chart = Chart(title=title, height=max(len(stages), 1) * row_h + _TOP + 4)
    left = 180
    plot_w = chart.width - left - 120
    peak = max([s["tokens"] for s in stages] or [0]) or 1
    for index, stage in enumerate(stages):
        y = _TOP + index * row_h
        chart.bars.append(
            {
                "x": left,
                "y": y,
                "w": round(max(plot_w * stage["tokens"] / peak, 0.5), 1),
                "h": row_h - 6,
                "fill": COLORS["completion"],
                "title": f"{stage['name']}: {stage['tokens']} tokens",
            }
        )
        chart.y_labels.append(
            {"x": left - 6, "y": y + 12, "text": stage["name"][:28], "line_y": None, "anchor": "end"}
        )
        chart.x_labels.append(
            {
                "x": left + round(plot_w * stage["tokens"] / peak, 1) + 6,
                "y": y + 12,
                "text": f"{stage['tokens']:,} tokens · {stage['cost']:.4f}",
                "anchor": "start",
            }
        )
    return chart


def usage_page_data(*, business: Business, days: int, now: datetime | None = None) -> dict[str, Any]:
    period = usage_page_period(days=days, now=now)
    summary = usage_summary(business=business, period=period, group_by=("day", "stage"))
    messages_by_day = _messages_by_day(business, period)
    turns_by_day = _turns_by_day(business, period)
    handoffs_by_day = _handoffs_by_day(business, period)
    llm_by_day = {row["day"]: row for row in summary["by_day"]}

    first = period.since.date()
    calendar = [first + timedelta(days=i) for i in range(days)]
    rows = []
    for day in calendar:
        msgs = messages_by_day.get(day, {"in": 0, "out": 0})
        llm = llm_by_day.get(day, {})
        prompt = llm.get("prompt_tokens", 0)
        completion = llm.get("completion_tokens", 0)
        rows.append(
            {
                "day": day,
                "messages_in": msgs["in"],
                "messages_out": msgs["out"],
                "turns": turns_by_day.get(day, 0),
                "handoffs": handoffs_by_day.get(day, 0),
                "calls": llm.get("calls", 0),
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "tokens": prompt + completion,
                "cost": llm.get("cost", Decimal(0)),
            }
        )
    totals = {
        key: sum((row[key] for row in rows), Decimal(0) if key == "cost" else 0)
        for key in (
            "messages_in",
            "messages_out",
            "turns",
            "handoffs",
            "calls",
            "prompt_tokens",
            "completion_tokens",
            "tokens",
            "cost",
        )
    }
    stages = [
        {
            "name": row["name"],
            "key": row["key"],
            "calls": row["calls"],
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
            "tokens": row["prompt_tokens"] + row["completion_tokens"],
            "cost": row["cost"],
            "cost_complete": row["cost_complete"],
        }
        for row in summary["by_stage"]
    ]
    column = {key: [row[key] for row in rows] for key in rows[0]} if rows else {}
    charts = [
        day_chart(
            title="Messages per day",
            days=calendar,
            bars=[
                ("inbound", COLORS["in"], column["messages_in"]),
                ("outbound", COLORS["out"], column["messages_out"]),
            ],
        ),
        day_chart(
            title="AI turns and handoffs per day",
            days=calendar,
            bars=[
                ("AI turns", COLORS["turns"], column["turns"]),
                ("handoffs", COLORS["handoffs"], column["handoffs"]),
            ],
        ),
        day_chart(
            title="Tokens per day",
            days=calendar,
            bars=[
                ("prompt tokens", COLORS["prompt"], column["prompt_tokens"]),
                ("completion tokens", COLORS["completion"], column["completion_tokens"]),
            ],
            stacked=True,
        ),
        day_chart(
            title="Cost per day",
            days=calendar,
            line=("cost", COLORS["cost"], [float(c) for c in column["cost"]]),
        ),
    ]
    return {
        "days": days,
        "since": period.since,
        "until": period.until - timedelta(days=1),
        "rows": rows,
        "totals": totals,
        "cost_complete": summary["totals"]["cost_complete"],
        "unpriced_calls": summary["totals"]["unpriced_calls"],
        "stages": stages,
        "charts": charts,
        "stage_chart": stage_chart(title="Tokens per stage", stages=stages) if stages else None,
    }


def business_usage_view(model_admin, request: HttpRequest, object_id: str) -> HttpResponse:
    # Another tenant's business is a 404 (get_object); viewers may read usage.
    business = model_admin.get_object(request, unquote(object_id))
    if not model_admin.has_view_permission(request, business):
        raise PermissionDenied
    days = usage_days(request.GET.get("days"))
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": business,
        "title": f"Usage of {business.name}",
        "subtitle": None,
        "usage": usage_page_data(business=business, days=days),
        "day_choices": DAY_CHOICES,
    }
    return TemplateResponse(request, "admin/businesses/business/usage.html", context)
