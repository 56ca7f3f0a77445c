"""API shapes for contacts, conversations, messages and LLM calls."""

from __future__ import annotations

from rest_framework import serializers

from channels_app.models import ChannelKind
from conversations.models import Contact, Conversation, LLMCall, Message
from icmp.api.serializers import StrictFieldsMixin

IDENTITY_HELP = {
    "phone": "The customer's phone number, when the channel shares it (WhatsApp users with a "
    "username may hide it); null otherwise.",
    "bsuid": "WhatsApp business-scoped user id, when there is one; null otherwise.",
    "parent_bsuid": "WhatsApp parent BSUID (linked business portfolios); null otherwise.",
    "username": "WhatsApp username, when the customer has one.",
}


class ContactSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A customer on one channel account. Only `name` is writable.

    `external_id` is the id inbound messages are matched on: on WhatsApp the
    BSUID when there is one, else the phone number.
    """

    class Meta:
        model = Contact
        fields = [
            "id",
            "external_id",
            "name",
            "phone",
            "bsuid",
            "parent_bsuid",
            "username",
            "channel_account",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [name for name in fields if name != "name"]
        extra_kwargs = {name: {"help_text": text} for name, text in IDENTITY_HELP.items()}


class ContactSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Contact
        fields = ["id", "external_id", "name", "phone", "bsuid", "username"]
        read_only_fields = fields
        extra_kwargs = {name: {"help_text": IDENTITY_HELP[name]} for name in ("phone", "bsuid", "username")}


class ConversationSerializer(serializers.ModelSerializer):
    contact = ContactSummarySerializer(read_only=True)
    channel = serializers.ChoiceField(
        source="channel_account.kind", choices=ChannelKind.choices, read_only=True
    )
    stage = serializers.SlugRelatedField(
        slug_field="key", read_only=True, allow_null=True, help_text="Current stage key."
    )

    class Meta:
        model = Conversation
        fields = [
            "id",
            "contact",
            "channel_account",
            "channel",
            "agent",
            "stage",
            "status",
            "ai_mode",
            "needs_human",
            "handoff_reason",
            "collected_data",
            "ai_turns",
            "last_inbound_at",
            "last_message_at",
            "closed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PauseAISerializer(StrictFieldsMixin, serializers.Serializer):
    """Why the AI is paused (optional)."""

    reason = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Shown as the handoff reason."
    )


class ResumeAISerializer(StrictFieldsMixin, serializers.Serializer):
    """No fields: the body is empty (or `{}`)."""


class StaffReplySerializer(StrictFieldsMixin, serializers.Serializer):
    """What staff answer; sent through the channel like any reply, and the AI pauses."""

    text = serializers.CharField(min_length=1, max_length=4096, help_text="The reply (1 to 4096 characters).")


class MessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "direction",
            "author",
            "type",
            "text",
            "payload",
            "external_id",
            "reply_to_external_id",
            "status",
            "error_code",
            "error",
            "created_at",
            "status_changed_at",
        ]
        read_only_fields = fields


LLM_CALL_FIELDS = [
    "id",
    "conversation",
    "message",
    "stage",
    "template",
    "template_version",
    "purpose",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "latency_ms",
    "cost",
    "outcome",
    "error",
    "dry_run",
    "created_at",
]


class LLMCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = LLMCall
        fields = LLM_CALL_FIELDS
        read_only_fields = fields


class LLMCallDetailSerializer(serializers.ModelSerializer):
    class Meta:
        model = LLMCall
        fields = [*LLM_CALL_FIELDS, "base_url_host", "request_messages", "response_text", "response_json"]
        read_only_fields = fields
