"""Back office for stages, with their version history."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from icmp.admin_tenancy import TenantHistoryAdmin, TenantModelForm, TenantRelatedFilter, copy_saved
from icmp.errors import ApplicationError
from stages.models import Stage
from stages.selectors import TEMPLATE_FIELDS, stage_templates_resolve
from stages.services import (
    UPDATABLE_FIELDS,
    stage_create,
    stage_data_schema_validate,
    stage_delete,
    stage_update,
)
from templates_app.admin_views import DiffField, VersionedAdminMixin
from templates_app.models import PromptTemplate
from templates_app.rendering import HANDOFF_KEY
from templates_app.selectors import TemplateSource

SOURCE_LABELS = {
    TemplateSource.STAGE: "this stage's own",
    TemplateSource.BUSINESS_DEFAULT: "inherited: the business default",
    TemplateSource.PLATFORM_DEFAULT: "inherited: the platform default",
}


class StageForm(TenantModelForm):
    newest_wins_fields = ("is_initial",)

    class Meta:
        model = Stage
        fields = "__all__"

    def clean_key(self):
        key = self.cleaned_data.get("key")
        if key == HANDOFF_KEY:
            raise ValidationError(f"{HANDOFF_KEY!r} is reserved for handing off to staff.")
        return key

    def clean_data_schema(self):
        data_schema = self.cleaned_data.get("data_schema")
        data_schema = {} if data_schema is None else data_schema
        try:
            stage_data_schema_validate(data_schema=data_schema)
        except ApplicationError as exc:
            problems = exc.details.get("data_schema") or []
            raise ValidationError(
                [f"{p['path']}: {p['message']}" for p in problems] or [exc.message]
            ) from exc
        return data_schema


@admin.register(Stage)
class StageAdmin(VersionedAdminMixin, TenantHistoryAdmin):
    form = StageForm
    history_list_display = ["compare"]
    diff_fields = (
        DiffField("key", "key"),
        DiffField("name", "name"),
        DiffField("description", "description", "text"),
        DiffField("order", "order"),
        DiffField("is_initial", "initial"),
        DiffField("is_handoff", "handoff"),
        DiffField("data_schema", "data schema", "json"),
        DiffField("selection_template", "selection template", "template"),
        DiffField("extraction_template", "extraction template", "template"),
        DiffField("response_template", "response template", "template"),
    )
    list_display = ("name", "key", "business", "order", "is_initial", "is_handoff", "updated_at")
    list_filter = (("business", TenantRelatedFilter), "is_initial", "is_handoff")
    search_fields = ("key", "name", "description")
    list_select_related = ("business",)
    ordering = ("business__name", "order", "key")
    readonly_fields = ("templates_in_use", "id", "created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ("business", "key", "name", "description", "order", "is_initial", "is_handoff")}),
        ("Data collected", {"fields": ("data_schema",)}),
        (
            "Templates",
            {
                "fields": (
                    "selection_template",
                    "extraction_template",
                    "response_template",
                    "templates_in_use",
                ),
                "description": "Empty uses the business default of that kind, then the platform default.",
            },
        ),
        ("Record", {"fields": ("id", "created_at", "updated_at"), "classes": ("collapse",)}),
    ]

    @admin.display(description="templates in use")
    def templates_in_use(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        resolved = stage_templates_resolve(stage=obj)
        rows = []
        for kind, item in resolved.items():
            label = kind.replace("_", " ").capitalize()
            if item.template is None:
                rows.append(format_html("<li>{}: <em>none: the built-in instructions</em></li>", label))
                continue
            url = reverse("admin:templates_app_prompttemplate_change", args=[item.template.pk])
            rows.append(
                format_html(
                    '<li>{}: <a href="{}">{}</a> <small>({})</small></li>',
                    label,
                    url,
                    str(item.template),
                    SOURCE_LABELS.get(item.source, item.source),
                )
            )
        return format_html(
            "<ul style='margin: 0; padding-left: 1em'>{}</ul>",
            format_html_join("", "{}", ((r,) for r in rows)),
        )

    def version_restore(self, *, request, obj, record):
        """Description, schema and templates as they were (not the key, order or flags, which
        other stages and conversations depend on); a template deleted since falls back to the
        defaults."""
        self.check_writable(request, obj)
        data = {"description": record.description, "data_schema": record.data_schema}
        for field in TEMPLATE_FIELDS.values():
            template_id = getattr(record, f"{field}_id")
            data[field] = PromptTemplate.objects.filter(pk=template_id).first() if template_id else None
        return stage_update(stage=obj, data=data)

    def playground_target(self, obj):
        return {"stage": obj}

    def save_model(self, request, obj, form, change):
        self.check_writable(request, obj)
        data = {f: form.cleaned_data[f] for f in UPDATABLE_FIELDS if f in form.cleaned_data}
        if change:
            data = {f: v for f, v in data.items() if f in form.changed_data}
            saved = stage_update(stage=obj, data=data)
        else:
            saved = stage_create(business=obj.business, **data)
        copy_saved(obj, saved)

    def delete_model(self, request, obj):
        stage_delete(stage=obj)

    def delete_queryset(self, request, queryset):
        for stage in self.writable(request, queryset, "delete"):
            stage_delete(stage=stage)
