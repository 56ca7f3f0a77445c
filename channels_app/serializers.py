"""API shapes for channel accounts. Secrets are write-only; responses say only whether one is set."""

from __future__ import annotations

from rest_framework import serializers

from businesses.models import Agent
from channels_app.models import ChannelAccount, ChannelKind
from icmp.api.serializers import StrictFieldsMixin


class ChannelAccountSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """A WhatsApp number, Facebook Page, Instagram account or generic API channel.

    Secrets are write-only; `has_*` says whether one is set.
    """

    kind = serializers.ChoiceField(
        choices=ChannelKind.choices, help_text="Channel kind; cannot be changed after creation."
    )
    external_id = serializers.CharField(
        max_length=64,
        required=False,
        help_text="The id Meta routes webhooks by (WhatsApp phone_number_id, Page id, Instagram "
        "account id). Unique per kind across the platform. Generated for `api` accounts when omitted.",
    )
    agent = serializers.PrimaryKeyRelatedField(
        queryset=Agent.objects.none(),
        allow_null=True,
        required=False,
        help_text="Agent for new conversations; null uses the business default.",
    )
    access_token = serializers.CharField(
        write_only=True, required=False, allow_blank=True, max_length=4096, style={"input_type": "password"}
    )
    app_secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=255,
        style={"input_type": "password"},
        help_text="Empty falls back to the META_APP_SECRET setting.",
    )
    verify_token = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=255,
        style={"input_type": "password"},
        help_text="Empty falls back to the META_VERIFY_TOKEN setting.",
    )
    has_access_token = serializers.SerializerMethodField()
    has_app_secret = serializers.SerializerMethodField()
    has_verify_token = serializers.SerializerMethodField()

    class Meta:
        model = ChannelAccount
        fields = [
            "id",
            "kind",
            "external_id",
            "name",
            "is_active",
            "needs_reauth",
            "agent",
            "access_token",
            "app_secret",
            "verify_token",
            "has_access_token",
            "has_app_secret",
            "has_verify_token",
            "ownership_check",
            "ownership_checked_at",
            "ownership_label",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "needs_reauth",
            "ownership_check",
            "ownership_checked_at",
            "ownership_label",
            "created_at",
            "updated_at",
        ]
        # (kind, external_id) uniqueness is the service's job: it answers
        # "already connected" without saying which tenant holds the id.
        validators: list = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        business = self.context.get("business")
        if business is not None and "agent" in self.fields:
            self.fields["agent"].queryset = Agent.objects.filter(business=business)

    def get_has_access_token(self, obj: ChannelAccount) -> bool:
        return bool(obj.access_token)

    def get_has_app_secret(self, obj: ChannelAccount) -> bool:
        return bool(obj.app_secret)

    def get_has_verify_token(self, obj: ChannelAccount) -> bool:
        return bool(obj.verify_token)
