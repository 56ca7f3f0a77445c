"""Query filters for contacts, conversations and LLM calls.

Id filters compare ids only (no lookup of the referenced row): the queryset is
already the caller's business, so another tenant's id simply matches nothing.
A value of the wrong type is a 400, never silently ignored.
"""

from __future__ import annotations

import uuid

from django import forms
from django.db.models import Q, QuerySet
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from channels_app.models import ChannelKind
from conversations.models import (
    AIMode,
    Contact,
    Conversation,
    ConversationStatus,
    LLMCall,
    LLMOutcome,
    LLMPurpose,
)
from icmp.api.filters import UTCDateTimeFilter

TRUE_VALUES = frozenset({"true", "1", "yes"})
FALSE_VALUES = frozenset({"false", "0", "no"})


class StrictBooleanField(forms.Field):
    """true/false (or 1/0, yes/no); anything else is an error, not "no filter".

    django-filter's BooleanFilter maps unknown values to None and so ignores them.
    """

    def to_python(self, value: object) -> bool | None:
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in TRUE_VALUES:
            return True
        if text in FALSE_VALUES:
            return False
        raise forms.ValidationError("Must be true or false.", code="invalid")


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanFilter(filters.Filter):
    field_class = StrictBooleanField


class ContactFilter(filters.FilterSet):
    channel_account = filters.UUIDFilter(field_name="channel_account_id", help_text="Channel account id.")
    q = filters.CharFilter(
        method="search", max_length=160, help_text="Search in name, username, phone, BSUID and external_id."
    )

    class Meta:
        model = Contact
        fields = ["channel_account", "q"]

    def search(self, queryset: QuerySet[Contact], name: str, value: str) -> QuerySet[Contact]:
        return queryset.filter(contact_search(value)) if value.strip() else queryset


def contact_search(value: str, prefix: str = "") -> Q:
    """A contact by any of its names or ids (`prefix` reaches it from another model)."""
    value = value.strip()
    condition = Q()
    for field in ("name", "username", "phone", "bsuid", "parent_bsuid", "external_id"):
        condition |= Q(**{f"{prefix}{field}__icontains": value})
    return condition


class ConversationFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=ConversationStatus.choices)
    ai_mode = filters.ChoiceFilter(choices=AIMode.choices)
    needs_human = StrictBooleanFilter(field_name="needs_human")
    channel = filters.ChoiceFilter(
        field_name="channel_account__kind", choices=ChannelKind.choices, help_text="Channel kind."
    )
    channel_account = filters.UUIDFilter(field_name="channel_account_id", help_text="Channel account id.")
    stage = filters.CharFilter(method="filter_stage", max_length=64, help_text="Stage key (or stage id).")
    contact = filters.UUIDFilter(field_name="contact_id", help_text="Contact id.")
    q = filters.CharFilter(
        method="search",
        max_length=160,
        help_text="The contact's name, username, phone number, BSUID or external_id (substring).",
    )

    class Meta:
        model = Conversation
        fields = ["status", "ai_mode", "needs_human", "channel", "channel_account", "stage", "contact", "q"]

    def search(self, queryset: QuerySet[Conversation], name: str, value: str) -> QuerySet[Conversation]:
        return queryset.filter(contact_search(value, "contact__")) if value.strip() else queryset

    def filter_stage(self, queryset: QuerySet[Conversation], name: str, value: str) -> QuerySet[Conversation]:
        try:
            return queryset.filter(stage_id=uuid.UUID(value))
        except ValueError:
            return queryset.filter(stage__key=value)


class LLMCallFilter(filters.FilterSet):
    conversation = filters.UUIDFilter(field_name="conversation_id", help_text="Conversation id.")
    message = filters.UUIDFilter(field_name="message_id", help_text="Message id.")
    stage = filters.UUIDFilter(field_name="stage_id", help_text="Stage id.")
    purpose = filters.ChoiceFilter(choices=LLMPurpose.choices)
    outcome = filters.ChoiceFilter(choices=LLMOutcome.choices)
    model = filters.CharFilter(max_length=100)
    dry_run = StrictBooleanFilter(field_name="dry_run")
    created_after = UTCDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601; inclusive."
    )
    created_before = UTCDateTimeFilter(
        field_name="created_at", lookup_expr="lt", help_text="ISO 8601; exclusive."
    )

    class Meta:
        model = LLMCall
        fields = [
            "conversation",
            "message",
            "stage",
            "purpose",
            "outcome",
            "model",
            "dry_run",
            "created_after",
            "created_before",
        ]
