"""Back office for channel accounts (secrets write-only) and stored webhook events."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from channels_app.adapters.ownership import OwnershipProof
from channels_app.models import ChannelAccount, WebhookEvent, WebhookEventPart
from channels_app.services import (
    EXTERNAL_ID_RE,
    META_KINDS,
    channel_account_create,
    channel_account_delete,
    channel_account_ownership_prove,
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
    pretty_json,
)
from icmp.errors import ApplicationError

SECRETS = ChannelAccount.SECRET_FIELDS


def _json_shown(text: str):
    """Stored JSON, indented; as plain text when the strict parser refuses it.

    Deep nesting (stored before the webhook refused it) breaks the pretty-printer,
    a lone surrogate the page's UTF-8.
    """
    try:
        return pretty_json(strict_json.loads(text))
    except ValueError:
        return pretty_json(text)


class SecretField(forms.CharField):
    """Write-only: the current value is never rendered; an empty input keeps it."""

    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def has_changed(self, initial, data):
        # Cleaned as the form cleans it: a re-posted token with a stray space is the same token.
        data = self.to_python(data)
        return bool(data) and data != initial


_OWNERSHIP_ATTR = "_icmp_ownership"


class ChannelAccountForm(TenantModelForm):
    # What Meta said about the posted token, asked before the admin's transaction opened.
    ownership: OwnershipProof | ApplicationError | None = None

    operator_approved = forms.BooleanField(
        required=False,
        label="Approve without Meta's check",
        help_text="Platform operator only: connect this id without proving that the token controls it.",
    )
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

    def _get_validation_exclusions(self):
        # Not the (kind, external_id) constraint: "already exists" would tell anyone whether an id
        # is connected before any proof. The service answers `already_connected` after the proof.
        exclusions = super()._get_validation_exclusions()
        exclusions.add("external_id")
        return exclusions

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
        if isinstance(self.ownership, ApplicationError) and not cleaned.get("operator_approved"):
            self.add_error("access_token" if "access_token" in self.fields else None, self.ownership.message)
        return cleaned


@admin.register(ChannelAccount)
class ChannelAccountAdmin(TenantAdmin):
    """Owners and admins connect, change and delete accounts and set their secrets; others read them.

    As in the API (icmp.access): an account's ids and secrets are what Meta
    routes and authenticates by.
    """

    form = ChannelAccountForm
    locked_on_change = ("kind",)
    write_only_fields = SECRETS
    list_display = ("name", "kind", "external_id", "business", "is_active", "needs_reauth", "agent")
    list_filter = ("kind", "is_active", "needs_reauth", ("business", TenantRelatedFilter))
    # Never the secrets: a search box over them would be an oracle.
    search_fields = ("name", "=external_id")
    list_select_related = ("business", "agent")
    readonly_fields = (
        "secrets_status",
        "needs_reauth",
        "ownership_check",
        "ownership_checked_at",
        "ownership_label",
        "id",
        "created_at",
        "updated_at",
    )

    def secrets_writable(self, request, obj=None) -> bool:
        if obj is None:
            action, allowed = "add", self.has_add_permission(request)
        else:
            action, allowed = "change", self.has_change_permission(request, obj)
        return allowed and (is_superuser(request) or set(SECRETS) <= set(self.access.fields(action)))

    def get_fieldsets(self, request, obj=None):
        fieldsets = [
            (None, {"fields": ("business", "kind", "external_id", "name", "is_active", "agent")}),
        ]
        # Only form fields, never read-only ones, for secrets: a read-only field shows its value.
        if self.secrets_writable(request, obj):
            secret_fields = [*SECRETS, "clear_secrets"] if obj is not None else list(SECRETS)
            fieldsets.append(("Secrets (write-only)", {"fields": [*secret_fields, "secrets_status"]}))
        else:
            fieldsets.append(("Secrets", {"fields": ("secrets_status",)}))
        ownership = ["ownership_check", "ownership_checked_at", "ownership_label"]
        if is_superuser(request):
            ownership.insert(0, "operator_approved")
        fieldsets.append(("Ownership", {"fields": ownership}))
        fieldsets.append(("State", {"fields": ("needs_reauth", "id", "created_at", "updated_at")}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if obj is None or not self.secrets_writable(request, obj):
            # A declared field is in every form class; drop it where it must not be used.
            form.base_fields.pop("clear_secrets", None)
        if not is_superuser(request):
            form.base_fields.pop("operator_approved", None)
        form.ownership = getattr(request, _OWNERSHIP_ATTR, None)
        return form

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST":
            # Meta is asked here, before Django's admin opens its transaction: no wait holds one.
            setattr(request, _OWNERSHIP_ATTR, self._ownership_from_post(request, object_id))
        return super().changeform_view(request, object_id, form_url, extra_context)

    def _ownership_from_post(
        self, request: HttpRequest, object_id
    ) -> OwnershipProof | ApplicationError | None:
        """Prove the posted id and token when the save would need it; None when it would not."""
        try:
            obj = self.get_queryset(request).filter(pk=unquote(object_id)).first() if object_id else None
        except (ValidationError, ValueError):
            obj = None  # not a uuid
        if object_id and (obj is None or not self.has_change_permission(request, obj)):
            return None  # the normal view answers 404 or 403
        kind = obj.kind if obj is not None else request.POST.get("kind", "")
        # Parsed as the form parses it ("false" is no), so this decision and the save agree.
        approved = ChannelAccountForm.base_fields["operator_approved"].to_python(
            request.POST.get("operator_approved")
        )
        if kind not in META_KINDS or (is_superuser(request) and approved):
            return None
        external_id = request.POST.get("external_id", "").strip() or (obj.external_id if obj else "")
        if not EXTERNAL_ID_RE.match(external_id):
            return None  # the form says what is wrong with the id
        # Only those who may set secrets post a token; anyone else's is ignored, as the form ignores it.
        token = request.POST.get("access_token", "").strip() if self.secrets_writable(request, obj) else ""
        if obj is not None:
            if not token and "access_token" not in request.POST.getlist("clear_secrets"):
                token = obj.access_token
            if external_id == obj.external_id and token in ("", obj.access_token):
                return None  # neither a new id nor a new token: nothing to prove
        try:
            return channel_account_ownership_prove(kind=kind, external_id=external_id, access_token=token)
        except ApplicationError as exc:
            return exc

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
        ownership = {
            "proof": form.ownership if isinstance(form.ownership, OwnershipProof) else None,
            "operator_approved": is_superuser(request) and bool(cleaned.get("operator_approved")),
            # Meta was asked before the transaction opened; never from inside it.
            "prove_now": False,
        }
        if not change:
            saved = channel_account_create(
                business=obj.business,
                kind=obj.kind,
                name=obj.name,
                external_id=obj.external_id,
                is_active=obj.is_active,
                agent=obj.agent,
                **{name: cleaned.get(name) or "" for name in SECRETS if name in form.fields},
                **ownership,
            )
            copy_saved(obj, saved)
            return
        fields = ("external_id", "name", "is_active", "agent", *SECRETS)
        data = {name: cleaned[name] for name in fields if name in form.changed_data}
        for name in cleaned.get("clear_secrets") or ():
            data[name] = ""
        saved = channel_account_update(
            channel_account=ChannelAccount.objects.get(pk=obj.pk), data=data, **ownership
        )
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
        for account in self.writable(request, queryset, "delete"):
            channel_account_delete(channel_account=account)


@admin.register(WebhookEvent)
class WebhookEventAdmin(LargeTableMixin, TenantAdmin):
    """Raw bodies, for the platform operator only: one POST may carry several businesses' customers.

    Written by the webhook views; `manage.py replay_webhooks` reprocesses failures.
    """

    tenant_field = None
    list_display = ("created_at", "channel", "status", "attempts", "processed_at")
    list_filter = ("status", "channel", ("created_at", admin.DateFieldListFilter))
    ordering = ("-created_at",)
    fields = (
        "channel",
        "received_for",
        "status",
        "attempts",
        "error",
        "processed_at",
        "created_at",
        "parts_display",
        "body_display",
    )

    @admin.display(description="body")
    def body_display(self, obj):
        return _json_shown(obj.body)

    @admin.display(description="per business")
    def parts_display(self, obj):
        parts = obj.parts.select_related("business").order_by("business__name")
        return (
            format_html_join(
                mark_safe("<br>"),
                '<a href="{}">{}</a>: {}',
                (
                    (
                        reverse("admin:channels_app_webhookeventpart_change", args=[part.pk]),
                        part.business,
                        part.status,
                    )
                    for part in parts
                ),
            )
            or "-"
        )


@admin.register(WebhookEventPart)
class WebhookEventPartAdmin(LargeTableMixin, TenantAdmin):
    """A business's own items of a webhook event; the raw body stays with the platform."""

    list_display = ("created_at", "channel", "business", "channel_account", "status")
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
        "error",
        "created_at",
        "updated_at",
        "items_display",
    )

    @admin.display(description="items")
    def items_display(self, obj):
        return _json_shown(obj.items)
