"""Serializer helpers shared by every API module."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictFieldsMixin:
    """Reject unknown fields in a request body instead of silently ignoring them.

    Read-only fields sent by a client (`id`, `business`, `created_at` …) are
    unknown for writing and rejected too, so a body can never set `business`.
    """

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
