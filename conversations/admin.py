"""Back office for contacts, conversations (with their transcript), messages and LLM calls.

Messages, LLM calls and webhook events are the system's record: read-only here.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from conversations.models import (
    AIMode,
    Contact,
    Conversation,
    ConversationStatus,
    LLMCall,
    Message,
)
from conversations.services import contact_update, conversation_ai_pause, conversation_ai_resume
from icmp.admin_tenancy import (
    LargeTableMixin,
    TenantAdmin,
    TenantModelForm,
    TenantRelatedFilter,
    changed_model_fields,
    copy_saved,
    pretty_json,
)

TRANSCRIPT_LIMIT = 200


def _admin_link(obj, label=None):
    if obj is None:
        return "-"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


class ContactForm(TenantModelForm):
    class Meta:
        model = Contact
        fields = "__all__"


@admin.register(Contact)
class ContactAdmin(LargeTableMixin, TenantAdmin):
    form = ContactForm
    # The channel's id for the customer is what inbound messages are matched on.
    locked_on_change = ("channel_account", "external_id")
    list_display = ("__str__", "external_id", "channel_account", "business", "created_at")
    list_filter = (
        ("business", TenantRelatedFilter),
        ("channel_account", TenantRelatedFilter),
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("name", "=external_id")
    list_select_related = ("business", "channel_account")
    ordering = ("-created_at",)
    fields = ("business", "channel_account", "external_id", "name", "conversations_link", "created_at")
    readonly_fields = ("conversations_link", "created_at")

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


class ConversationForm(TenantModelForm):
    class Meta:
        model = Conversation
        fields = ("ai_mode", "needs_human", "handoff_reason", "status", "stage")

    def clean_status(self):
        status = self.cleaned_data.get("status")
        instance = self.instance
        if (
            status == ConversationStatus.OPEN
            and instance.status != ConversationStatus.OPEN
            and Conversation.objects.filter(contact_id=instance.contact_id, status=ConversationStatus.OPEN)
            .exclude(pk=instance.pk)
            .exists()
        ):
            raise ValidationError("This contact already has an open conversation.")
        return status


@admin.register(Conversation)
class ConversationAdmin(LargeTableMixin, TenantAdmin):
    form = ConversationForm
    list_display = (
        "contact",
        "business",
        "channel_account",
        "stage",
        "status",
        "ai_mode",
        "needs_human",
        "last_message_at",
    )
    list_filter = (
        "needs_human",
        "ai_mode",
        "status",
        ("business", TenantRelatedFilter),
        ("channel_account", TenantRelatedFilter),
        ("stage", TenantRelatedFilter),
        ("last_message_at", admin.DateFieldListFilter),
    )
    search_fields = ("contact__name", "=contact__external_id", "handoff_reason")
    list_select_related = ("contact", "business", "channel_account", "stage")
    ordering = ("-last_message_at", "-id")
    actions = ["pause_ai", "resume_ai"]
    fieldsets = [
        (None, {"fields": ("business", "contact", "channel_account", "agent", "links")}),
        ("Control", {"fields": ("ai_mode", "needs_human", "handoff_reason", "status", "stage")}),
        ("Collected data", {"fields": ("collected_data_display",)}),
        ("Transcript", {"fields": ("transcript",)}),
        (
            "Record",
            {
                "fields": ("ai_turns", "last_inbound_at", "last_message_at", "closed_at", "created_at", "id"),
                "classes": ("collapse",),
            },
        ),
    ]
    readonly_fields = (
        "business",
        "contact",
        "channel_account",
        "agent",
        "links",
        "collected_data_display",
        "transcript",
        "ai_turns",
        "last_inbound_at",
        "last_message_at",
        "closed_at",
        "created_at",
        "id",
    )

    def has_add_permission(self, request):
        # Conversations start when a customer writes.
        return False

    @admin.display(description="collected data")
    def collected_data_display(self, obj):
        return pretty_json(obj.collected_data)

    @admin.display(description="see also")
    def links(self, obj):
        messages_url = (
            reverse("admin:conversations_message_changelist") + f"?conversation__id__exact={obj.pk}"
        )
        calls_url = reverse("admin:conversations_llmcall_changelist") + f"?conversation__id__exact={obj.pk}"
        return format_html(
            '<a href="{}">Messages</a> · <a href="{}">LLM calls</a> · {}',
            messages_url,
            calls_url,
            _admin_link(obj.contact, "Contact"),
        )

    @admin.display(description=f"transcript (last {TRANSCRIPT_LIMIT} messages)")
    def transcript(self, obj):
        # Customer text and model output are untrusted: every value goes through format_html.
        recent = list(
            obj.messages.only(
                "created_at", "author", "direction", "type", "text", "status", "error", "error_code"
            ).order_by("-created_at", "-id")[:TRANSCRIPT_LIMIT]
        )
        if not recent:
            return "No messages yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            '<td style="white-space: pre-wrap">{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    timezone.localtime(m.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    m.get_author_display(),
                    m.get_direction_display(),
                    m.get_type_display(),
                    m.text,
                    m.get_status_display(),
                    " ".join(filter(None, (m.error_code, m.error))),
                )
                for m in reversed(recent)
            ),
        )
        return format_html(
            '<table class="transcript"><thead><tr><th>time</th><th>author</th><th>direction</th>'
            "<th>type</th><th>text</th><th>status</th><th>error</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def save_model(self, request, obj, form, change):
        """Only the fields staff changed; the AI mode through the services the API uses."""
        self.check_writable(request, obj)
        changed = changed_model_fields(form)
        new_mode = obj.ai_mode
        fields = [f for f in changed if f != "ai_mode"]
        if "status" in fields:
            obj.closed_at = timezone.now() if obj.status == ConversationStatus.CLOSED else None
            fields.append("closed_at")
        if fields:
            obj.save(update_fields=[*fields, "updated_at"])
        if "ai_mode" in changed:
            if new_mode == AIMode.PAUSED:
                conversation_ai_pause(conversation=obj, reason=obj.handoff_reason, by=request.user)
            else:
                conversation_ai_resume(conversation=obj)

    @admin.action(description="Pause the AI (staff reply by hand)", permissions=["change"])
    def pause_ai(self, request, queryset):
        paused = 0
        for conversation in self.writable(request, queryset).filter(ai_mode=AIMode.AUTO):
            conversation_ai_pause(conversation=conversation, by=request.user)
            paused += 1
        self.message_user(request, f"AI paused in {paused} conversation(s).", messages.SUCCESS)

    @admin.action(description="Resume the AI", permissions=["change"])
    def resume_ai(self, request, queryset):
        resumed = 0
        for conversation in self.writable(request, queryset).filter(ai_mode=AIMode.PAUSED):
            conversation_ai_resume(conversation=conversation)
            resumed += 1
        self.message_user(request, f"AI resumed in {resumed} conversation(s).", messages.SUCCESS)


@admin.register(Message)
class MessageAdmin(LargeTableMixin, TenantAdmin):
    view_only = True
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
        return _admin_link(obj.conversation)

    @admin.display(description="payload")
    def payload_display(self, obj):
        return pretty_json(obj.payload)

    @admin.display(description="raw")
    def raw_display(self, obj):
        return pretty_json(obj.raw)


@admin.register(LLMCall)
class LLMCallAdmin(LargeTableMixin, TenantAdmin):
    view_only = True
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
        return _admin_link(obj.conversation)

    @admin.display(description="request messages")
    def request_display(self, obj):
        return pretty_json(obj.request_messages)

    @admin.display(description="response JSON")
    def response_json_display(self, obj):
        return pretty_json(obj.response_json)
