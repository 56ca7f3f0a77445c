"""GET /api/v1/usage/: tokens and cost of the caller's business by day, stage and model."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from conversations.models import LLMCall
from conversations.usage import (
    DEFAULT_GROUPING,
    GROUPINGS,
    UsagePeriodError,
    usage_bound_parse,
    usage_period,
    usage_summary,
)
from icmp.api.docs import READ_ERRORS, errors


@extend_schema_field(
    {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
)
class DateOrDateTimeField(serializers.CharField):
    """An ISO 8601 date or date-time, parsed by the serializer (see usage_bound_parse)."""


class UsageQuerySerializer(serializers.Serializer):
    since = DateOrDateTimeField(
        required=False,
        help_text="Start of the period (inclusive): an ISO 8601 date or date-time, UTC when naive. "
        "Default: 30 days before `until`.",
    )
    until = DateOrDateTimeField(
        required=False,
        help_text="End of the period: a date includes that whole day (UTC); a date-time is exclusive. "
        "Default: now.",
    )
    group_by = serializers.CharField(
        required=False,
        default=DEFAULT_GROUPING,
        help_text=f"Comma-separated groupings among {', '.join(GROUPINGS)}.",
    )
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Include dry-run calls (made by tests of the pipeline) as well as real traffic.",
    )

    def _bound(self, value: str, *, end: bool):
        try:
            return usage_bound_parse(value, end=end)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc))

    def validate_since(self, value: str):
        return self._bound(value, end=False)

    def validate_until(self, value: str):
        return self._bound(value, end=True)

    def validate_group_by(self, value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        if not names:
            raise serializers.ValidationError(f"Choose one or more of {', '.join(GROUPINGS)}.")
        unknown = [name for name in names if name not in GROUPINGS]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown grouping {unknown[0]!r}; choose from {', '.join(GROUPINGS)}."
            )
        return list(dict.fromkeys(names))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["period"] = usage_period(since=attrs.get("since"), until=attrs.get("until"))
        except UsagePeriodError as exc:
            raise serializers.ValidationError({exc.field: [str(exc)]})
        return attrs


class UsageFiguresSerializer(serializers.Serializer):
    calls = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cached_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(
        max_digits=20,
        decimal_places=6,
        help_text="USD, the sum of the known costs.",
    )
    cost_complete = serializers.BooleanField(
        help_text="False when some calls reported tokens but their model has no price, "
        "so `cost` is a lower bound."
    )
    unpriced_calls = serializers.IntegerField(help_text="Calls with tokens but no known price.")


class UsageDaySerializer(UsageFiguresSerializer):
    day = serializers.DateField(help_text="UTC day.")


class UsageStageSerializer(UsageFiguresSerializer):
    stage = serializers.UUIDField(allow_null=True, help_text="Null for calls made with no stage.")
    key = serializers.CharField(help_text='The stage key, or "none".')
    name = serializers.CharField()


class UsageModelSerializer(UsageFiguresSerializer):
    model = serializers.CharField()


class UsageSerializer(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(help_text="Exclusive.")
    dry_run_included = serializers.BooleanField()
    totals = UsageFiguresSerializer()
    by_day = UsageDaySerializer(many=True, required=False, help_text="With group_by=day.")
    by_stage = UsageStageSerializer(many=True, required=False, help_text="With group_by=stage.")
    by_model = UsageModelSerializer(many=True, required=False, help_text="With group_by=model.")


class UsageApi(APIView):
    access_model = LLMCall._meta.label_lower

    @extend_schema(
        tags=["llm-calls"],
        summary="Tokens and cost by day, stage and model",
        description=(
            "Aggregates the business's LLM call ledger over [since, until). Only the groupings "
            "named in `group_by` are returned. Days are UTC. Dry-run calls are left out unless "
            "`dry_run=true`."
        ),
        parameters=[UsageQuerySerializer],
        responses={200: UsageSerializer, **errors(400, *READ_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        summary = usage_summary(
            business=request.auth.business,
            period=query.validated_data["period"],
            group_by=query.validated_data["group_by"],
            include_dry_run=query.validated_data["dry_run"],
        )
        return Response(UsageSerializer(summary).data)
