"""Back office for contacts and messages; messages are the system's record, read-only here."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from conversations.models import Contact, Message
from conversations.services import contact_update
from icmp.admin_tenancy import (
    LargeTableMixin,
    TenantAdmin,
    TenantModelForm,
    TenantRelatedFilter,
    copy_saved,
    pretty_json,
)

from .links import admin_link


class ContactForm(TenantModelForm):
    class Meta:
        model = Contact
        fields = "__all__"


@admin.register(Contact)
class ContactAdmin(LargeTableMixin, TenantAdmin):
    form = ContactForm
    # The channel's id for the customer is what inbound messages are matched on.
    locked_on_change = ("channel_account", "external_id")
    list_display = (
        "__str__",
        "username",
        "phone",
        "external_id",
        "channel_account",
        "business",
        "created_at",
    )
    list_filter = (
        ("business", TenantRelatedFilter),
        ("channel_account", TenantRelatedFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("name", "username", "=phone", "=bsuid", "=external_id")
    list_select_related = ("business", "channel_account")
    ordering = ("-created_at",)
    fields = (
        "business",
        "channel_account",
        "external_id",
        "name",
        "phone",
        "username",
        "bsuid",
        "parent_bsuid",
        "conversations_link",
        "created_at",
    )
    # What the channel shares: staff read it, the channels write it.
    readonly_fields = ("phone", "username", "bsuid", "parent_bsuid", "conversations_link", "created_at")

    @admin.display(description="conversations")
    def conversations_link(self, obj):
        if obj is None or obj.pk is None:
            return "-"
        url = reverse("admin:conversations_conversation_changelist") + f"?contact__id__exact={obj.pk}"
        return format_html('<a href="{}">Conversations of this contact</a>', url)

    def save_model(self, request, obj, form, change):
        self.check_writable(request, obj)
        if change and "name" in form.changed_data:
            copy_saved(obj, contact_update(contact=Contact.objects.get(pk=obj.pk), name=obj.name))
        elif not change:
            obj.save()


@admin.register(Message)
class MessageAdmin(LargeTableMixin, TenantAdmin):
    list_display = ("created_at", "conversation", "direction", "author", "type", "short_text", "status")
    list_filter = (
        "direction",
        "author",
        "status",
        "type",
        ("business", TenantRelatedFilter),
        ("channel_account", TenantRelatedFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("=external_id",)
    search_help_text = "The channel's message id (wamid, mid …)."
    list_select_related = ("conversation__contact",)
    ordering = ("-created_at", "-id")
    fields = (
        "conversation_link",
        "business",
        "channel_account",
        "direction",
        "author",
        "type",
        "text",
        "status",
        "error_code",
        "error",
        "attempts",
        "external_id",
        "reply_to_external_id",
        "stage",
        "sent_by",
        "provider_timestamp",
        "status_changed_at",
        "created_at",
        "payload_display",
        "raw_display",
    )

    @admin.display(description="text")
    def short_text(self, obj):
        return obj.text if len(obj.text) <= 80 else obj.text[:79] + "…"

    @admin.display(description="conversation")
    def conversation_link(self, obj):
        return admin_link(obj.conversation)

    @admin.display(description="payload")
    def payload_display(self, obj):
        return pretty_json(obj.payload)

    @admin.display(description="raw")
    def raw_display(self, obj):
        return pretty_json(obj.raw)
