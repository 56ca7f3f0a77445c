"""Tenants: businesses, their members, agents, API keys and AI control settings."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from businesses.config_version import ConfigQuerySet
from icmp.db import BaseModel


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


# Roles allowed to change business data (stages, templates, agents, conversations).
EDIT_ROLES = frozenset({Role.OWNER, Role.ADMIN, Role.EDITOR})
# Roles allowed to manage keys, members, channel secrets and the business itself.
MANAGE_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class Business(BaseModel):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_businesses"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="businesses"
    )
    # Validated against businesses/schemas/business_config.schema.json.
    config = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    # Bumped by every write of what a turn caches about the business (its stages, templates,
    # AI settings, agents, itself): the turn's cache key names it (businesses/config_version.py).
    config_version = models.PositiveBigIntegerField(default=1, editable=False)

    objects = ConfigQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "businesses"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        # The version only ever moves by the database's own increment: a save of an instance
        # read before a bump must not write its older number back.
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = [name for name in update_fields if name != "config_version"]
        elif not self._state.adding and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name != "config_version"
            ]
        super().save(*args, **kwargs)


class Membership(BaseModel):
    business = models.ForeignKey(Business, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["business", "user"], name="membership_unique_user"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.business} ({self.role})"


class Agent(BaseModel):
    business = models.ForeignKey(Business, on_delete=models.CASCADE, related_name="agents")
    name = models.CharField(max_length=120)
    persona = models.TextField(
        blank=True, help_text="Who the assistant is and how it speaks; given to every template."
    )
    instructions = models.TextField(blank=True, help_text="Standing rules for every reply.")
    model = models.CharField(
        max_length=100, blank=True, help_text="LLM model name; empty uses the LLM_MODEL setting."
    )
    temperature = models.DecimalField(max_digits=3, decimal_places=2, default=0.3)
    max_tokens = models.PositiveIntegerField(
        default=500, help_text="Upper bound on tokens generated per reply."
    )
    is_default = models.BooleanField(default=False)

    objects = ConfigQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["business", "name"], name="agent_unique_name"),
            # One default agent per business: new conversations use it.
            models.UniqueConstraint(
                fields=["business"], condition=Q(is_default=True), name="agent_one_default"
            ),
            models.CheckConstraint(
                condition=Q(temperature__gte=0) & Q(temperature__lte=2),
                name="agent_temperature_range",
            ),
            models.CheckConstraint(
                condition=Q(max_tokens__gte=1) & Q(max_tokens__lte=32000),
                name="agent_max_tokens_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class APIKey(BaseModel):
    """A business API key. Only a SHA-256 of the secret is stored.

    The full key (`icmp_<prefix>.<secret>`) is shown once, at creation. Keys
    carry 256 bits of randomness, so a fast hash is enough; the prefix finds
    the row and the hash is compared in constant time.
    """

    business = models.ForeignKey(Business, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        indexes = [
            # api-keys/ list: the business's keys, newest first.
            models.Index(fields=["business", "-created_at"], name="apikey_business_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_usable(self) -> bool:
        return not self.is_revoked and not self.is_expired


class AIControlSettings(BaseModel):
    business = models.OneToOneField(Business, on_delete=models.CASCADE, related_name="ai_settings")
    auto_reply_enabled = models.BooleanField(default=True)
    burst_window_seconds = models.PositiveIntegerField(
        default=3, help_text="Messages arriving this close together are answered in one turn."
    )
    fallback_text = models.TextField(
        blank=True,
        help_text="Optional holding message sent once when a conversation is handed to staff.",
    )
    # Small enough that prompt size is flat from a short conversation to a long
    # one (the instructions dominate); collected_data carries the facts.
    history_token_budget = models.PositiveIntegerField(
        default=400, help_text="Recent conversation history given to the model, in tokens."
    )
    monthly_token_budget = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per calendar month; empty means unlimited."
    )
    max_turns_per_conversation = models.PositiveIntegerField(
        null=True, blank=True, help_text="AI turns per conversation before handing to staff."
    )
    whatsapp_window_template = models.CharField(
        max_length=512,
        blank=True,
        help_text="Approved WhatsApp template sent instead of free text outside the 24-hour window.",
    )
    whatsapp_window_template_language = models.CharField(max_length=15, default="en_US")

    objects = ConfigQuerySet.as_manager()

    class Meta:
        verbose_name = "AI control settings"
        verbose_name_plural = "AI control settings"
        constraints = [
            models.CheckConstraint(
                condition=Q(burst_window_seconds__lte=300), name="ai_settings_burst_window_max"
            ),
        ]

    def __str__(self) -> str:
        return f"AI settings for {self.business}"
