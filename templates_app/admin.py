"""Back office for prompt templates: tenants' own, and the platform defaults (read-only to them)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from icmp.admin_tenancy import (
    TenantHistoryAdmin,
    TenantModelForm,
    TenantRelatedFilter,
    copy_saved,
)
from templates_app.admin_views import DiffField, VersionedAdminMixin
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


def llm_calls_url(*, template_id, version: int) -> str:
    """The LLM call list filtered to the calls one template version produced."""
    query = urlencode({"template__id__exact": template_id, "template_version": version})
    return f"{reverse('admin:conversations_llmcall_changelist')}?{query}"


@admin.register(PromptTemplate)
class PromptTemplateAdmin(VersionedAdminMixin, TenantHistoryAdmin):
    form = PromptTemplateForm
    history_list_display = ["version", "compare", "llm_calls"]
    diff_fields = (
        DiffField("version", "version"),
        DiffField("name", "name"),
        DiffField("description", "description", "text"),
        DiffField("is_default", "default"),
        DiffField("content", "content", "text"),
    )
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
            # The add form: every kind's variables, until the template has one.
            return format_html_join(
                "",
                "<p><strong>{}</strong></p>{}",
                ((kind, self._variables_html(kind)) for kind in VARIABLES),
            )
        return self._variables_html(obj.kind)

    def _variables_html(self, kind: str):
        return format_html(
            "<dl style='margin: 0'>{}</dl>",
            format_html_join(
                "", "<dt><code>{{{{ {} }}}}</code></dt><dd>{}</dd>", VARIABLES.get(kind, {}).items()
            ),
        )

    @admin.display(description="LLM calls")
    def llm_calls(self, record):
        return format_html(
            '<a href="{}">calls of v{}</a>',
            llm_calls_url(template_id=record.id, version=record.version),
            record.version,
        )

    def version_links(self, obj, record):
        return [
            (
                f"LLM calls that used version {record.version}",
                llm_calls_url(template_id=obj.pk, version=record.version),
            )
        ]

    def version_restore(self, *, request, obj, record):
        """Name, description, content and the default flag as they were; a content change is a new version."""
        self.check_writable(request, obj)
        data = {field: getattr(record, field) for field in UPDATABLE_FIELDS}
        return template_update(template=obj, data=data)

    def playground_target(self, obj):
        return {"template": obj}

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
        for template in self.writable(request, queryset, "delete"):
            template_delete(template=template)
