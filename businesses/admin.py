"""Back office for businesses, their members, agents, API keys and AI settings."""

from __future__ import annotations

from functools import partial

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from businesses.admin_keys import NewKeyPageMixin, new_key_remember
from businesses.admin_members import MembershipInline, membership_formset_save
from businesses.admin_views import business_usage_view
from businesses.models import (
    Agent,
    AIControlSettings,
    APIKey,
    Business,
    Membership,
)
from businesses.services import (
    AGENT_FIELDS,
    AI_SETTINGS_FIELDS,
    agent_create,
    agent_delete,
    agent_update,
    ai_settings_ensure,
    ai_settings_update,
    api_key_create,
    api_key_revoke,
    business_config_validate,
    business_create,
    business_update,
)
from icmp.admin_tenancy import (
    TenantAdmin,
    TenantModelForm,
    TenantRelatedFilter,
    changed_model_fields,
    copy_saved,
)
from icmp.errors import ApplicationError

admin.site.site_header = "ICMP back office"
admin.site.site_title = "ICMP back office"
admin.site.index_title = "Businesses, conversations and prompts"


def _config_errors(exc: ApplicationError) -> list[str]:
    problems = exc.details.get("config") or []
    return [f"{p['path']}: {p['message']}" for p in problems if isinstance(p, dict)] or [exc.message]


class BusinessConfigMixin:
    def clean_config(self):
        config = self.cleaned_data.get("config")
        config = {} if config is None else config
        try:
            business_config_validate(config=config)
        except ApplicationError as exc:
            raise ValidationError(_config_errors(exc)) from exc
        return config


class BusinessForm(BusinessConfigMixin, TenantModelForm):
    class Meta:
        model = Business
        fields = "__all__"


class BusinessAddForm(BusinessConfigMixin, TenantModelForm):
    """A new business is made by `business_create`: owner, settings, agent, stage, key."""

    owner_email = forms.EmailField(
        help_text="The owner's login; a staff account is created when none has this email."
    )

    class Meta:
        model = Business
        fields = ["name", "config"]


@admin.register(Business)
class BusinessAdmin(NewKeyPageMixin, TenantAdmin):
    tenant_field = "pk"
    form = BusinessForm
    list_display = ("name", "slug", "owner", "is_active", "created_at", "usage_link")
    list_filter = ("is_active",)
    search_fields = ("name", "slug", "owner__email")
    list_select_related = ("owner",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "created_at", "updated_at")
    inlines = [MembershipInline]

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        usage = path(
            "<path:object_id>/usage/",
            self.admin_site.admin_view(partial(business_usage_view, self)),
            name="{}_{}_usage".format(*info),
        )
        return [usage, *super().get_urls()]

    @admin.display(description="usage")
    def usage_link(self, obj):
        url = reverse("admin:businesses_business_usage", args=[obj.pk])
        return format_html('<a href="{}">Usage</a>', url)

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = BusinessAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("name", "owner_email", "config")})]
        return [
            (None, {"fields": ("name", "slug", "owner", "is_active", "config")}),
            ("Record", {"fields": ("id", "created_at", "updated_at"), "classes": ("collapse",)}),
        ]

    def get_inlines(self, request, obj):
        # business_create makes the owner's membership; more members once it exists.
        return [] if obj is None else super().get_inlines(request, obj)

    def save_formset(self, request, form, formset, change):
        if formset.model is Membership:
            membership_formset_save(formset, by=request.user)
            return
        super().save_formset(request, form, formset, change)

    def save_model(self, request, obj, form, change):
        self.check_writable(request, obj)
        if not change:
            business, raw_key = business_create(
                name=form.cleaned_data["name"],
                owner_email=form.cleaned_data["owner_email"],
                config=form.cleaned_data["config"],
            )
            copy_saved(obj, business)
            new_key_remember(request, business=business, raw_key=raw_key)
            return
        changed = changed_model_fields(form)
        business_update(business=obj, data={f: getattr(obj, f) for f in ("name", "config") if f in changed})
        others = [f for f in changed if f not in ("name", "config")]
        if others:
            obj.save(update_fields=[*others, "updated_at"])


class AgentForm(TenantModelForm):
    newest_wins_fields = ("is_default",)

    class Meta:
        model = Agent
        fields = "__all__"

    def clean_is_default(self):
        is_default = self.cleaned_data.get("is_default")
        if self.instance.pk and self.instance.is_default and not is_default:
            raise ValidationError(
                "A business always has a default agent: make another agent the default instead."
            )
        return is_default


@admin.register(Agent)
class AgentAdmin(TenantAdmin):
    form = AgentForm
    list_display = ("name", "business", "model", "temperature", "max_tokens", "is_default", "updated_at")
    list_filter = (("business", TenantRelatedFilter), "is_default")
    search_fields = ("name", "model")
    list_select_related = ("business",)
    readonly_fields = ("id", "created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ("business", "name", "is_default")}),
        ("Behaviour", {"fields": ("persona", "instructions")}),
        ("Model", {"fields": ("model", "temperature", "max_tokens")}),
        ("Record", {"fields": ("id", "created_at", "updated_at"), "classes": ("collapse",)}),
    ]

    def has_delete_permission(self, request, obj=None):
        # Conversations fall back to the default agent; it can be replaced, not deleted.
        if obj is not None and obj.is_default:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        self.check_writable(request, obj)
        data = {f: form.cleaned_data[f] for f in AGENT_FIELDS if f in form.cleaned_data}
        if change:
            data = {f: v for f, v in data.items() if f in form.changed_data}
            saved = agent_update(agent=Agent.objects.get(pk=obj.pk), data=data)
        else:
            saved = agent_create(business=obj.business, **data)
        copy_saved(obj, saved)

    def delete_model(self, request, obj):
        agent_delete(agent=obj)

    def delete_queryset(self, request, queryset):
        for agent in self.writable(request, queryset, "delete"):
            agent_delete(agent=agent)


class APIKeyForm(TenantModelForm):
    class Meta:
        model = APIKey
        fields = "__all__"

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and "expires_at" in self.changed_data and expires_at <= timezone.now():
            raise ValidationError("The expiry must be in the future.")
        return expires_at


@admin.register(APIKey)
class APIKeyAdmin(NewKeyPageMixin, TenantAdmin):
    """Only a hash of a key is stored; the key itself is shown once, when it is made."""

    form = APIKeyForm
    list_display = ("name", "business", "masked_key", "state", "expires_at", "last_used_at", "created_at")
    list_filter = (("business", TenantRelatedFilter), ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "=prefix")
    list_select_related = ("business",)
    date_hierarchy = "created_at"
    actions = ["revoke"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("business", "name", "expires_at")})]
        return [
            (None, {"fields": ("business", "name", "masked_key", "state", "expires_at")}),
            ("Use", {"fields": ("created_by", "created_at", "last_used_at", "revoked_at")}),
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is None:
            return readonly
        shown = ("masked_key", "state", "created_by", "created_at", "last_used_at", "revoked_at")
        return [*readonly, *(name for name in shown if name not in readonly)]

    @admin.display(description="key")
    def masked_key(self, obj):
        return f"icmp_{obj.prefix}.…"

    @admin.display(description="state")
    def state(self, obj):
        if obj.is_revoked:
            return "revoked"
        return "expired" if obj.is_expired else "active"

    def save_model(self, request, obj, form, change):
        self.check_writable(request, obj)
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(
            business=obj.business, name=obj.name, expires_at=obj.expires_at, created_by=request.user
        )
        copy_saved(obj, api_key)
        new_key_remember(request, business=api_key.business, raw_key=raw_key, name=api_key.name)

    @admin.action(description="Revoke the selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        keys = list(self.writable(request, queryset).filter(revoked_at__isnull=True))
        for api_key in keys:
            api_key_revoke(api_key=api_key)
        self.message_user(request, f"{len(keys)} API key(s) revoked.", messages.SUCCESS)


class AIControlSettingsForm(TenantModelForm):
    class Meta:
        model = AIControlSettings
        fields = "__all__"


@admin.register(AIControlSettings)
class AIControlSettingsAdmin(TenantAdmin):
    form = AIControlSettingsForm
    list_display = (
        "business",
        "auto_reply_enabled",
        "burst_window_seconds",
        "history_token_budget",
        "monthly_token_budget",
        "max_turns_per_conversation",
    )
    list_filter = ("auto_reply_enabled",)
    search_fields = ("business__name",)
    list_select_related = ("business",)
    readonly_fields = ("created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        self.check_writable(request, obj)
        data = {f: form.cleaned_data[f] for f in AI_SETTINGS_FIELDS if f in form.cleaned_data}
        if change:
            data = {f: v for f, v in data.items() if f in form.changed_data}
            saved = ai_settings_update(ai_settings=AIControlSettings.objects.get(pk=obj.pk), data=data)
        else:
            saved = ai_settings_update(ai_settings=ai_settings_ensure(business=obj.business), data=data)
        copy_saved(obj, saved)
