"""Back office for prompt templates: tenants' own, and the platform defaults (read-only to them)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from icmp.admin_tenancy import (
    TenantHistoryAdmin,
    TenantModelForm,
    TenantRelatedFilter,
    copy_saved,
)
from templates_app.models import PromptTemplate
from templates_app.rendering import VARIABLES, template_problems
from templates_app.services import (
    UPDATABLE_FIELDS,
    template_create,
    template_delete,
    template_update,
)


class PromptTemplateForm(TenantModelForm):
    newest_wins_fields = ("is_default",)

    class Meta:
        model = PromptTemplate
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind") or self.instance.kind
        content = cleaned.get("content")
        if kind and content is not None and "content" not in self.errors:
            for problem in template_problems(kind=kind, content=content):
                self.add_error("content", str(problem))
        return cleaned


@admin.register(PromptTemplate)
class PromptTemplateAdmin(TenantHistoryAdmin):
    form = PromptTemplateForm
    platform_rows = True
    # Stages, the LLM ledger and the version history all assume a template keeps its kind.
    locked_on_change = ("kind",)
    list_display = ("name", "kind", "owner", "version", "is_default", "updated_at")
    list_filter = ("kind", "is_default", ("business", TenantRelatedFilter))
    search_fields = ("name", "description")
    list_select_related = ("business",)
    readonly_fields = ("version", "available_variables", "id", "created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ("business", "kind", "name", "description", "is_default", "version")}),
        ("Content", {"fields": ("content", "available_variables")}),
        ("Record", {"fields": ("id", "created_at", "updated_at"), "classes": ("collapse",)}),
    ]

    @admin.display(description="owner", ordering="business__name")
    def owner(self, obj):
        return obj.business.name if obj.business_id else "Platform default"

    @admin.display(description="variables")
    def available_variables(self, obj):
        if obj is None or not obj.kind:
            return "Choose a kind and save to see the variables it may use."
        return format_html(
            "<dl style='margin: 0'>{}</dl>",
            format_html_join("", "<dt><code>{}</code></dt><dd>{}</dd>", VARIABLES.get(obj.kind, {}).items()),
        )

    def save_model(self, request, obj, form, change):
        """Through the services, so the admin and the API version templates alike."""
        self.check_writable(request, obj)
        data = {f: form.cleaned_data[f] for f in UPDATABLE_FIELDS if f in form.cleaned_data}
        if change:
            data = {f: v for f, v in data.items() if f in form.changed_data}
            saved = template_update(template=obj, data=data)
        else:
            saved = template_create(business=obj.business, kind=obj.kind, **data)
        copy_saved(obj, saved)

    def delete_model(self, request, obj):
        template_delete(template=obj)

    def delete_queryset(self, request, queryset):
        for template in self.writable(request, queryset):
            template_delete(template=template)
