"""Filters shared by the apps' FilterSets."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django_filters import rest_framework as filters
from django_filters.fields import IsoDateTimeField

from icmp.datetimes import to_utc


class UTCDateTimeField(IsoDateTimeField):
    """ISO 8601, refused (a 400 naming the parameter) when it has no UTC equivalent."""

    def to_python(self, value: object) -> datetime | None:
        moment = super().to_python(value)
        if moment is None:
            return None
        try:
            return to_utc(moment)
        except ValueError as exc:
            raise forms.ValidationError(str(exc), code="overflow")


class UTCDateTimeFilter(filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField
