"""The conversation inbox: the list with its filters, and the conversation page with staff actions."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import ValidationError
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from channels_app.models import ChannelKind
from conversations.admin_views import (
    conversation_action_view,
    conversation_needs_human_count,
    conversation_page_context,
    conversation_previews,
)
from conversations.models import AIMode, Author, Conversation, ConversationStatus
from conversations.services import conversation_ai_pause, conversation_ai_resume
from icmp.admin_roles import is_superuser, member_roles
from icmp.admin_tenancy import (
    LargeTableMixin,
    TenantAdmin,
    TenantModelForm,
    TenantRelatedFilter,
    changed_model_fields,
)

from .links import admin_link

PREVIEW_LENGTH = 80
# The inbox header says "12 need a human"; beyond this it says "99+".
NEEDS_HUMAN_CAP = 100


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


class LastActivityFilter(admin.SimpleListFilter):
    title = "last activity"
    parameter_name = "activity"
    _windows = {"today": 0, "7d": 7, "30d": 30}

    def lookups(self, request, model_admin):
        return (("today", "Today"), ("7d", "Past 7 days"), ("30d", "Past 30 days"))

    def queryset(self, request, queryset):
        days = self._windows.get(self.value() or "")
        if days is None:
            return queryset
        now = timezone.now()
        if days == 0:
            since = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
        else:
            since = now - timedelta(days=days)
        return queryset.filter(last_message_at__gte=since)


class ChannelKindFilter(admin.SimpleListFilter):
    title = "channel"
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        return ChannelKind.choices

    def queryset(self, request, queryset):
        if self.value() in ChannelKind.values:
            return queryset.filter(channel_account__kind=self.value())
        return queryset


class InboxChangeList(ChangeList):
    """Adds each row's last message to the page's rows only.

    Annotating the admin queryset would put the subqueries into the
    paginator's COUNT too, evaluated for up to 10,000 rows.
    """

    def get_results(self, request):
        super().get_results(request)
        rows = list(self.result_list)
        previews = conversation_previews(conversation_ids=[row.pk for row in rows], length=PREVIEW_LENGTH + 1)
        for row in rows:
            row.last_text, row.last_author = previews.get(row.pk, (None, None))
        self.result_list = rows


@admin.register(Conversation)
class ConversationAdmin(LargeTableMixin, TenantAdmin):
    """The inbox: newest activity first, needs-human ones flagged; the change page is the conversation."""

    form = ConversationForm
    list_display = (
        "contact",
        "channel",
        "stage",
        "ai_mode_display",
        "needs_human_badge",
        "last_message_at",
        "last_message_preview",
        "status",
        "business",
    )
    list_display_links = ("contact",)
    list_filter = (
        "needs_human",
        "ai_mode",
        ChannelKindFilter,
        ("stage", TenantRelatedFilter),
        "status",
        LastActivityFilter,
        ("business", TenantRelatedFilter),
        ("channel_account", TenantRelatedFilter),
    )
    search_fields = (
        "contact__name",
        "contact__username",
        "=contact__phone",
        "=contact__bsuid",
        "=contact__external_id",
        "handoff_reason",
    )
    search_help_text = "Contact name or username, phone number or BSUID (exact), or handoff reason."
    list_select_related = ("contact", "business", "channel_account", "stage")
    ordering = ("-last_message_at", "-id")
    actions = ["pause_ai", "resume_ai"]
    fieldsets = [
        (None, {"fields": ("business", "contact", "channel_account", "agent", "links")}),
        ("Control", {"fields": ("ai_mode", "needs_human", "handoff_reason", "status", "stage")}),
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
        "ai_turns",
        "last_inbound_at",
        "last_message_at",
        "closed_at",
        "created_at",
        "id",
    )

    def get_changelist(self, request, **kwargs):
        return InboxChangeList

    def get_list_display(self, request):
        # Staff of a single business need no business column; it only widens the inbox.
        if is_superuser(request) or len(member_roles(request)) > 1:
            return self.list_display
        return tuple(name for name in self.list_display if name != "business")

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        urls = [
            path(
                f"<path:object_id>/{action}/",
                self.admin_site.admin_view(partial(conversation_action_view, self, action=action)),
                name=f"{info[0]}_{info[1]}_{action}",
            )
            for action in ("pause", "resume", "reply", "close")
        ]
        return urls + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        if self.has_view_permission(request):
            count = conversation_needs_human_count(queryset=self.get_queryset(request), cap=NEEDS_HUMAN_CAP)
            extra_context["needs_human_count"] = min(count, NEEDS_HUMAN_CAP)
            extra_context["needs_human_capped"] = count > NEEDS_HUMAN_CAP
            changelist = reverse("admin:conversations_conversation_changelist")
            extra_context["needs_human_url"] = f"{changelist}?needs_human__exact=1&status__exact=open"
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        conversation = self.get_object(request, unquote(object_id))
        extra_context["inbox"] = conversation_page_context(
            conversation=conversation, can_act=self.has_change_permission(request, conversation)
        )
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="channel", ordering="channel_account__kind")
    def channel(self, obj):
        return obj.channel_account.get_kind_display()

    @admin.display(description="AI", ordering="ai_mode")
    def ai_mode_display(self, obj):
        if obj.ai_mode == AIMode.PAUSED:
            return format_html('<span class="inbox-badge inbox-paused">{}</span>', "paused")
        return obj.get_ai_mode_display()

    @admin.display(description="needs human", ordering="needs_human")
    def needs_human_badge(self, obj):
        if not obj.needs_human:
            return "-"
        reason = obj.handoff_reason or "flagged"
        short = reason if len(reason) <= 60 else reason[:59] + "…"
        return format_html(
            '<span class="inbox-badge inbox-needs-human" title="{}">needs human</span> {}', reason, short
        )

    @admin.display(description="last message")
    def last_message_preview(self, obj):
        text = getattr(obj, "last_text", None)
        if text is None:
            return "-"
        text = " ".join(text.split())
        if len(text) > PREVIEW_LENGTH:
            text = text[: PREVIEW_LENGTH - 1] + "…"
        author = Author(obj.last_author).label if obj.last_author in Author.values else ""
        return f"{author}: {text}" if author else text

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
            admin_link(obj.contact, "Contact"),
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
