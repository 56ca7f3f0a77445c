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


class OwnershipCheck(models.TextChoices):
    GRAPH = "graph", "Proven with Meta"
    OPERATOR = "operator", "Approved by the platform operator"
    LEGACY = "legacy", "Connected before ownership checks"


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

    # Webhooks route by external_id alone: a Meta account holds its id only once
    # its token proved control of it (channels_app.adapters.ownership).
    ownership_check = models.CharField(max_length=16, choices=OwnershipCheck.choices, blank=True)
    ownership_checked_at = models.DateTimeField(null=True, blank=True)
    ownership_label = models.CharField(
        max_length=255, blank=True, help_text="What Meta calls the account (name or number)."
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
    """The raw body of a signed webhook POST: a platform record, never a tenant's.

    Meta batches entries for several pages or numbers in one POST, so one body
    may carry several businesses' customers. Only superusers (the platform
    operator) see it; each business sees its own items through the event's
    `WebhookEventPart` rows. A payload our parser cannot handle stays here as
    `failed` with the error and can be reprocessed with
    `manage.py replay_webhooks` after a fix.
    """

    channel = models.CharField(max_length=16, choices=ChannelKind.choices)
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
        verbose_name = "raw webhook event"
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
        ]

    def __str__(self) -> str:
        return f"{self.channel} webhook {self.id} ({self.status})"


class WebhookEventPartStatus(models.TextChoices):
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class WebhookEventPart(BaseModel):
    """What one business may see of a webhook event: its own items, nothing else.

    Written when the event is applied (and rewritten on replay). `items` holds
    the raw JSON objects of the messages, receipts and errors that routed to
    this business's accounts; `error` holds only the notes about them.
    """

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="parts")
    business = models.ForeignKey(
        "businesses.Business", on_delete=models.CASCADE, related_name="webhook_event_parts"
    )
    channel = models.CharField(max_length=16, choices=ChannelKind.choices)
    channel_account = models.ForeignKey(
        ChannelAccount,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_event_parts",
        help_text="The first of the business's accounts the event's items were addressed to.",
    )
    items = models.TextField(default="{}", help_text="JSON: this business's raw items of the event.")
    status = models.CharField(
        max_length=16, choices=WebhookEventPartStatus.choices, default=WebhookEventPartStatus.PROCESSED
    )
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook event"
        constraints = [
            models.UniqueConstraint(fields=["event", "business"], name="webhook_part_unique_business"),
            models.CheckConstraint(
                condition=Q(status__in=WebhookEventPartStatus.values), name="webhook_part_status_valid"
            ),
        ]
        indexes = [
            # admin list per business, newest first.
            models.Index(fields=["business", "-created_at"], name="webhook_part_business_created"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} webhook {self.event_id} ({self.status})"
