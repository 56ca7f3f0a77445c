"""Back office for the LLM call ledger: read-only, like every system record."""

from __future__ import annotations

from django.contrib import admin

from conversations.models import LLMCall
from icmp.admin_tenancy import LargeTableMixin, TenantAdmin, TenantRelatedFilter, pretty_json

from .links import admin_link


@admin.register(LLMCall)
class LLMCallAdmin(LargeTableMixin, TenantAdmin):
    list_display = (
        "created_at",
        "purpose",
        "model",
        "conversation",
        "business",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "latency_ms",
        "cost",
        "outcome",
    )
    list_filter = (
        "purpose",
        "outcome",
        "dry_run",
        ("business", TenantRelatedFilter),
        ("stage", TenantRelatedFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=model",)
    list_select_related = ("business", "conversation__contact")
    ordering = ("-created_at", "-id")
    fields = (
        "business",
        "conversation_link",
        "message",
        "stage",
        "template",
        "template_version",
        "purpose",
        "model",
        "base_url_host",
        "outcome",
        "error",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "latency_ms",
        "cost",
        "dry_run",
        "created_at",
        "request_display",
        "response_text",
        "response_json_display",
    )

    @admin.display(description="conversation")
    def conversation_link(self, obj):
        return admin_link(obj.conversation)

    @admin.display(description="request messages")
    def request_display(self, obj):
        return pretty_json(obj.request_messages)

    @admin.display(description="response JSON")
    def response_json_display(self, obj):
        return pretty_json(obj.response_json)
