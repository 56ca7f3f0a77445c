"""Request and response shapes of the business-level and platform API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from businesses.models import Agent, AIControlSettings, APIKey, Business
from icmp.api.principal import PrincipalKind
from icmp.api.serializers import StrictFieldsMixin

# --- Errors (documentation only: icmp.api.errors renders them) ---------------------


# --- Auth check -------------------------------------------------------------------


class AuthCheckSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[k.value for k in PrincipalKind])
    business = serializers.UUIDField(allow_null=True)
    role = serializers.CharField(
        allow_null=True, help_text="The member's role for a staff session; null for API keys."
    )


# --- The caller's business -----------------------------------------------------------


class BusinessSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """PATCH replaces `config` as a whole; it must match the business config JSON Schema."""

    config = serializers.JSONField(required=False)

    class Meta:
        model = Business
        fields = ["id", "name", "slug", "config", "is_active", "created_at"]
        read_only_fields = ["id", "slug", "is_active", "created_at"]


class AIControlSettingsSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = AIControlSettings
        fields = [
            "auto_reply_enabled",
            "burst_window_seconds",
            "fallback_text",
            "history_token_budget",
            "monthly_token_budget",
            "max_turns_per_conversation",
            "whatsapp_window_template",
            "whatsapp_window_template_language",
            "updated_at",
        ]
        read_only_fields = ["updated_at"]
        extra_kwargs = {
            "burst_window_seconds": {"min_value": 0, "max_value": 300},
            "fallback_text": {"max_length": 4000},
            "history_token_budget": {"min_value": 0, "max_value": 1_000_000},
            "monthly_token_budget": {"min_value": 0},
            "max_turns_per_conversation": {"min_value": 1, "max_value": 100_000},
        }

    whatsapp_window_template_language = serializers.RegexField(
        r"^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$",
        max_length=15,
        required=False,
        help_text="WhatsApp template language code, e.g. `en_US` or `pt_BR`.",
        error_messages={"invalid": "Use a WhatsApp language code such as en_US."},
    )


# --- Agents ------------------------------------------------------------------------


class AgentSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    temperature = serializers.DecimalField(
        max_digits=3,
        decimal_places=2,
        min_value=0,
        max_value=2,
        coerce_to_string=False,
        required=False,
        help_text="Sampling temperature, 0 to 2.",
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "persona",
            "instructions",
            "model",
            "temperature",
            "max_tokens",
            "is_default",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "max_tokens": {"min_value": 1, "max_value": 32000},
            "is_default": {
                "help_text": "True makes this the business's default agent (the previous default is "
                "unset). The default cannot be unset directly, only replaced."
            },
        }


# --- API keys -------------------------------------------------------------------------


class APIKeySerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(source="is_usable", read_only=True)

    class Meta:
        model = APIKey
        fields = [
            "id",
            "name",
            "prefix",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "is_active",
        ]
        read_only_fields = fields


class APIKeyCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class APIKeyCreatedSerializer(APIKeySerializer):
    key = serializers.SerializerMethodField(help_text="The full key. Shown only in this response.")

    class Meta(APIKeySerializer.Meta):
        fields = [*APIKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, obj: APIKey) -> str:
        return self.context["raw_key"]


# --- Platform: businesses ---------------------------------------------------------------


class PlatformBusinessSerializer(serializers.ModelSerializer):
    owner_email = serializers.EmailField(source="owner.email", read_only=True)

    class Meta:
        model = Business
        fields = ["id", "name", "slug", "owner_email", "config", "is_active", "created_at"]
        read_only_fields = fields


class PlatformBusinessCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=200)
    owner_email = serializers.EmailField(max_length=254)
    config = serializers.JSONField(required=False, help_text="Must match the business config JSON Schema.")
    slug = serializers.SlugField(max_length=80, required=False)


class PlatformBusinessCreatedSerializer(serializers.ModelSerializer):
    owner_email = serializers.EmailField(source="owner.email", read_only=True)
    api_key = serializers.SerializerMethodField(
        help_text="The business's first API key. Shown only in this response."
    )

    class Meta:
        model = Business
        fields = ["id", "name", "slug", "owner_email", "api_key", "created_at"]
        read_only_fields = fields

    def get_api_key(self, obj: Business) -> str:
        return self.context["raw_key"]


class VerifyOwnerSerializer(StrictFieldsMixin, serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class VerifyOwnerResultSerializer(serializers.Serializer):
    verified = serializers.BooleanField()


def validated(serializer_class: type[serializers.Serializer], data: Any, **kwargs: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
