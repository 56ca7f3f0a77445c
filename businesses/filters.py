"""Query filters for list routes of this app."""

from __future__ import annotations

import django_filters

from businesses.models import Business


class BusinessFilter(django_filters.FilterSet):
    owner_email = django_filters.CharFilter(
        field_name="owner__email",
        lookup_expr="iexact",
        help_text="Only businesses owned by this email (case-insensitive).",
    )
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Business
        fields = ["owner_email", "is_active"]
