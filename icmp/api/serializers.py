"""Serializer helpers shared by every API module."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


# Reject unknown fields in a request body instead of silently ignoring them.
# Read-only fields sent by a client (`id`, `business`, `created_at` …) are
# unknown for writing and rejected too, so a body can never set `business`.
# (A comment, not a docstring: drf-spectacular would copy a docstring into
# every serializer's schema description.)
class StrictFieldsMixin:
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            writable = {
                name
                for name, field in self.fields.items()
                if not field.read_only  # type: ignore[attr-defined]
            }
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `validation_error`.")
    message = serializers.CharField(help_text="What went wrong, for people.")
    details = serializers.JSONField(help_text="Field errors or other context; `{}` when none.")


class ErrorSerializer(serializers.Serializer):
    """Every API error: `{"error": {"code", "message", "details"}}`."""

    error = ErrorBodySerializer()
