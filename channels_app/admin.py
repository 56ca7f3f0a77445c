"""Back office for channel accounts (secrets write-only) and stored webhook events."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from businesses.models import MANAGE_ROLES
from channels_app.models import ChannelAccount, WebhookEvent
from channels_app.services import (
    EXTERNAL_ID_RE,
    channel_account_create,
    channel_account_delete,
    channel_account_update,
)
from icmp import strict_json
from icmp.admin_tenancy import (
    LargeTableMixin,
    TenantAdmin,
    TenantModelForm,
    TenantRelatedFilter,
    copy_saved,
    is_superuser,
    member_roles,
    pretty_json,
)

SECRETS = ChannelAccount.SECRET_FIELDS


class SecretField(forms.CharField):
    """Write-only: the current value is never rendered; an empty input keeps it."""

    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def has_changed(self, initial, data):
        return bool(data) and data != initial


class ChannelAccountForm(TenantModelForm):
    clear_secrets = forms.MultipleChoiceField(
        choices=[(name, name.replace("_", " ")) for name in SECRETS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Erase these secrets. An empty app secret or verify token falls back to "
        "the META_APP_SECRET / META_VERIFY_TOKEN settings.",
    )

    class Meta:
        model = ChannelAccount
        fields = "__all__"

    def clean_external_id(self):
        external_id = (self.cleaned_data.get("external_id") or "").strip()
        if not EXTERNAL_ID_RE.match(external_id):
            raise ValidationError("Only letters, digits and . _ : @ + - (at most 64).")
        return external_id

    def clean(self):
        cleaned = super().clean()
        cleared = set(cleaned.get("clear_secrets") or ())
        for name in SECRETS:
            if name not in self.fields:
                continue
            if name in cleared:
                cleaned[name] = ""
            elif not cleaned.get(name):
                cleaned[name] = getattr(self.instance, name, "") or ""
        return cleaned


@admin.register(ChannelAccount)
class ChannelAccountAdmin(TenantAdmin):
    """Editors change names, agents and activity; owners and admins connect accounts and set secrets."""

    form = ChannelAccountForm
    add_roles = MANAGE_ROLES
    locked_on_change = ("kind",)
    list_display = ("name", "kind", "external_id", "business", "is_active", "needs_reauth", "agent")
    list_filter = ("kind", "is_active", "needs_reauth", ("business", TenantRelatedFilter))
    # Never the secrets: a search box over them would be an oracle.
    search_fields = ("name", "=external_id")
    list_select_related = ("business", "agent")
    readonly_fields = ("secrets_status", "needs_reauth", "id", "created_at", "updated_at")

    def can_manage_secrets(self, request, obj=None) -> bool:
        if is_superuser(request):
            return True
        if obj is None:
            return any(role in MANAGE_ROLES for role in member_roles(request).values())
        return self.role_on(request, obj) in MANAGE_ROLES

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ("business", "kind", "external_id", "name", "is_active", "agent")}),
        ]
        # Only form fields, never read-only ones, for secrets: a read-only field shows its value.
        if self.can_manage_secrets(request, obj) and self.has_change_permission(request, obj):
            secret_fields = [*SECRETS, "clear_secrets"] if obj is not None else list(SECRETS)
            fieldsets.append(("Secrets (write-only)", {"fields": [*secret_fields, "secrets_status"]}))
        else:
            fieldsets.append(("Secrets", {"fields": ("secrets_status",)}))
        fieldsets.append(("State", {"fields": ("needs_reauth", "id", "created_at", "updated_at")}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if obj is None or not self.can_manage_secrets(request, obj):
            # A declared field is in every form class; drop it where it must not be used.
            form.base_fields.pop("clear_secrets", None)
        return form

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in SECRETS:
            return SecretField(
                label=db_field.verbose_name.capitalize(),
                required=False,
                max_length=db_field.max_length,
                strip=True,
                help_text="Leave empty to keep the current value.",
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="secrets")
    def secrets_status(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        return ", ".join(
            f"{name.replace('_', ' ')}: {'set' if getattr(obj, name) else 'not set'}" for name in SECRETS
        )

    def save_model(self, request, obj, form, change):
        self.check_writable(request, obj)
        cleaned = form.cleaned_data
        if not change:
            saved = channel_account_create(
                business=obj.business,
                kind=obj.kind,
                name=obj.name,
                external_id=obj.external_id,
                is_active=obj.is_active,
                agent=obj.agent,
                **{name: cleaned.get(name) or "" for name in SECRETS if name in form.fields},
            )
            copy_saved(obj, saved)
            return
        fields = ("external_id", "name", "is_active", "agent", *SECRETS)
        data = {name: cleaned[name] for name in fields if name in form.changed_data}
        for name in cleaned.get("clear_secrets") or ():
            data[name] = ""
        saved = channel_account_update(channel_account=ChannelAccount.objects.get(pk=obj.pk), data=data)
        copy_saved(obj, saved)

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Same rule as the API: an account with customers is deactivated, not deleted.
        for account in objs:
            if account.contacts.exists() or account.conversations.exists():
                protected.append(f"{account}: has conversations; deactivate it instead")
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        channel_account_delete(channel_account=obj)

    def delete_queryset(self, request, queryset):
        for account in self.writable(request, queryset):
            channel_account_delete(channel_account=account)


@admin.register(WebhookEvent)
class WebhookEventAdmin(LargeTableMixin, TenantAdmin):
    """Written by the webhook views; `manage.py replay_webhooks` reprocesses failures."""

    view_only = True
    list_display = (
        "created_at",
        "channel",
        "business",
        "channel_account",
        "status",
        "attempts",
        "processed_at",
    )
    list_filter = (
        "status",
        "channel",
        ("business", TenantRelatedFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    list_select_related = ("business", "channel_account")
    ordering = ("-created_at",)
    fields = (
        "channel",
        "business",
        "channel_account",
        "status",
        "attempts",
        "error",
        "processed_at",
        "created_at",
        "body_display",
    )

    @admin.display(description="body")
    def body_display(self, obj):
        try:
            # Strict: deep nesting (stored before the webhook refused it) breaks the
            # pretty-printer, a lone surrogate the page's UTF-8: show those as text.
            return pretty_json(strict_json.loads(obj.body))
        except ValueError:
            return pretty_json(obj.body)
