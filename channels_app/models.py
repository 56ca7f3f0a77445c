"""Channel accounts (where customers write to a business) and raw webhook events."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from icmp.db import BaseModel
from icmp.fields import EncryptedTextField


class ChannelKind(models.TextChoices):
    WHATSAPP = "whatsapp", "WhatsApp"
    MESSENGER = "messenger", "Messenger"
    INSTAGRAM = "instagram", "Instagram"
    API = "api", "API"


class ChannelAccount(BaseModel):
    """A WhatsApp number, Facebook Page, Instagram account or the generic API channel.

    `external_id` routes inbound webhooks here: the WhatsApp phone_number_id,
    the Page id or the Instagram account id. Secrets are write-only in the API
    and never logged; an empty `app_secret`/`verify_token` falls back to the
    `META_APP_SECRET`/`META_VERIFY_TOKEN` settings. They are encrypted at rest
    (icmp.fields.EncryptedTextField, keys in FIELD_ENCRYPTION_KEYS) and read
    back as plain strings; they cannot be filtered on, except against "".
    """

    business = models.ForeignKey(
        "businesses.Business", on_delete=models.CASCADE, related_name="channel_accounts"
    )
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    external_id = models.CharField(max_length=64)
    name = models.CharField(max_length=120)
    is_active = models.BooleanField(default=True)
    access_token = EncryptedTextField(blank=True)
    # max_length limits input only: the stored token is longer than the value.
    app_secret = EncryptedTextField(max_length=255, blank=True)
    verify_token = EncryptedTextField(max_length=255, blank=True)
    needs_reauth = models.BooleanField(
        default=False, help_text="Set when Meta rejected the access token (error 190)."
    )
    agent = models.ForeignKey(
        "businesses.Agent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="channel_accounts",
        help_text="Agent for new conversations here; empty uses the business default.",
    )

    SECRET_FIELDS = ("access_token", "app_secret", "verify_token")

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ChannelKind.values), name="channel_kind_valid"),
            # Webhook routing: one account per (kind, Meta id) across all tenants.
            models.UniqueConstraint(fields=["kind", "external_id"], name="channel_unique_external_id"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()} {self.external_id})"

    def __repr__(self) -> str:  # never let secrets reach a log line through repr()
        return f"<ChannelAccount {self.id} {self.kind}:{self.external_id}>"


class WebhookEventStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    UNROUTED = "unrouted", "Unrouted"
    FAILED = "failed", "Failed"


class WebhookEvent(BaseModel):
    """The raw body of a signed webhook POST, stored with its effects.

    A payload our parser cannot handle stays here as `failed` with the error
    and can be reprocessed with `manage.py replay_webhooks` after a fix.
    `business` is null while the event is unrouted.
    """

    channel = models.CharField(max_length=16, choices=ChannelKind.choices)
    business = models.ForeignKey(
        "businesses.Business",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_events",
    )
    channel_account = models.ForeignKey(
        ChannelAccount,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_events",
    )
    # Set when the POST came to the account's own URL (/webhooks/<channel>/<id>/),
    # signed with its own secret: replay then applies only that account's items.
    received_for = models.ForeignKey(
        ChannelAccount, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    body = models.TextField()
    status = models.CharField(
        max_length=16, choices=WebhookEventStatus.choices, default=WebhookEventStatus.RECEIVED
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=WebhookEventStatus.values), name="webhook_status_valid"
            ),
        ]
        indexes = [
            # replay_webhooks: failed/unrouted events, oldest first.
            models.Index(
                fields=["status", "created_at"],
                condition=~Q(status="processed"),
                name="webhook_pending_idx",
            ),
            # admin list per business, newest first.
            models.Index(fields=["business", "-created_at"], name="webhook_business_created"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} webhook {self.id} ({self.status})"
