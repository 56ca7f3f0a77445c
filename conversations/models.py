"""Contacts, conversations, messages and the LLM call ledger."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from icmp.db import BaseModel

# The key of a WhatsApp contact whose only id, its number, now belongs to someone else.
RELEASED_PREFIX = "released."
# In an outbound message's payload: some parts of a split reply arrived, the rest wait for a retry.
PARTS_PENDING = "parts_pending"


class Contact(BaseModel):
    """A customer on one channel account (wa_id, PSID, IGSID or an API id).

    `external_id` is the key inbound messages find the contact by. On WhatsApp
    it is the business-scoped user id (BSUID) when there is one and the phone
    number otherwise; `phone`, `bsuid`, `parent_bsuid` and `username` hold what
    Meta shares, each only when it does (docs/whatsapp-identity.md).
    """

    business = models.ForeignKey("businesses.Business", on_delete=models.CASCADE, related_name="contacts")
    channel_account = models.ForeignKey(
        "channels_app.ChannelAccount", on_delete=models.CASCADE, related_name="contacts"
    )
    external_id = models.CharField(max_length=160)
    name = models.CharField(max_length=200, blank=True)
    # NULL, not "", for "not shared": the partial unique constraints below skip NULLs only.
    phone = models.CharField(max_length=32, null=True, blank=True)  # noqa: DJ001
    bsuid = models.CharField("BSUID", max_length=160, null=True, blank=True)  # noqa: DJ001
    parent_bsuid = models.CharField("parent BSUID", max_length=160, null=True, blank=True)  # noqa: DJ001
    username = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel_account", "external_id"], name="contact_unique_external_id"
            ),
            # One contact per person: a number or a BSUID never names two contacts of an account.
            models.UniqueConstraint(
                fields=["channel_account", "phone"],
                condition=Q(phone__isnull=False),
                name="contact_unique_phone",
            ),
            models.UniqueConstraint(
                fields=["channel_account", "bsuid"],
                condition=Q(bsuid__isnull=False),
                name="contact_unique_bsuid",
            ),
        ]
        indexes = [
            # contacts/ list for a business, newest first.
            models.Index(fields=["business", "-created_at", "-id"], name="contact_business_created"),
        ]

    def __str__(self) -> str:
        return self.name or self.username or self.phone or self.external_id

    @property
    def address(self) -> str:
        """Where replies go: the number when known (Meta prefers it), else the channel's id.

        Empty when nothing reaches the person any more (their number went to someone else).
        """
        if self.phone:
            return self.phone
        return "" if self.external_id.startswith(RELEASED_PREFIX) else self.external_id


class ConversationStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class AIMode(models.TextChoices):
    AUTO = "auto", "Auto"
    PAUSED = "paused", "Paused"


class Conversation(BaseModel):
    business = models.ForeignKey(
        "businesses.Business", on_delete=models.CASCADE, related_name="conversations"
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    channel_account = models.ForeignKey(
        "channels_app.ChannelAccount", on_delete=models.CASCADE, related_name="conversations"
    )
    agent = models.ForeignKey(
        "businesses.Agent",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="conversations",
    )
    stage = models.ForeignKey(
        "stages.Stage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=ConversationStatus.choices, default=ConversationStatus.OPEN
    )
    ai_mode = models.CharField(max_length=10, choices=AIMode.choices, default=AIMode.AUTO)
    needs_human = models.BooleanField(default=False)
    handoff_reason = models.CharField(max_length=500, blank=True)
    collected_data = models.JSONField(default=dict, blank=True)
    # For every key of collected_data: the message id and time it came from.
    collected_data_sources = models.JSONField(default=dict, blank=True)
    ai_turns = models.PositiveIntegerField(default=0)
    last_inbound_at = models.DateTimeField(
        null=True, blank=True, help_text="Last customer message; opens the 24-hour window."
    )
    last_message_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    handoff_notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When the holding message was sent for the current handoff."
    )
    # A turn holds a lease (claimed with a conditional UPDATE) so two workers never
    # answer the same conversation at once; an expired lease frees a killed worker's turn.
    turn_lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    turn_lease_token = models.UUIDField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-last_message_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ConversationStatus.values), name="conversation_status_valid"
            ),
            models.CheckConstraint(condition=Q(ai_mode__in=AIMode.values), name="conversation_ai_mode_valid"),
            # Concurrent webhooks for a new contact must not open two conversations.
            models.UniqueConstraint(
                fields=["contact"],
                condition=Q(status="open"),
                name="conversation_one_open_per_contact",
            ),
        ]
        indexes = [
            # conversations/ list and the admin inbox: a business's, newest activity first.
            models.Index(fields=["business", "-last_message_at", "-id"], name="conv_business_activity"),
            # The admin inbox for a superuser (all businesses), newest activity first.
            models.Index(fields=["-last_message_at", "-id"], name="conv_activity"),
            # "needs human" filter in the inbox and the API (closed ones too: they keep the flag).
            models.Index(
                fields=["business", "-last_message_at"],
                condition=Q(needs_human=True),
                name="conv_needs_human",
            ),
            # The inbox's needs-human badge and its link: open conversations waiting for a person.
            # Both match the badge's WHERE exactly, so its count and list read neither the table
            # nor the flagged history: a business's, and every business's in activity order (the
            # planner assumes needs_human and open independent, expects thousands of rows, and
            # would otherwise walk conv_activity until 50 match: all of it when few wait).
            models.Index(
                fields=["business", "-last_message_at", "-id"],
                condition=Q(needs_human=True, status="open"),
                name="conv_waiting",
            ),
            models.Index(
                fields=["-last_message_at", "-id"],
                condition=Q(needs_human=True, status="open"),
                name="conv_waiting_all",
            ),
            # "AI paused" filter in the inbox and the API (paused stays set when staff close).
            models.Index(
                fields=["business", "-last_message_at", "-id"],
                condition=Q(ai_mode="paused"),
                name="conv_ai_paused",
            ),
        ]

    def __str__(self) -> str:
        return f"Conversation with {self.contact} ({self.status})"


class Direction(models.TextChoices):
    IN = "in", "Inbound"
    OUT = "out", "Outbound"


class Author(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    AI = "ai", "AI"
    STAFF = "staff", "Staff"
    SYSTEM = "system", "System"


class MessageType(models.TextChoices):
    TEXT = "text", "Text"
    IMAGE = "image", "Image"
    AUDIO = "audio", "Audio"
    VIDEO = "video", "Video"
    DOCUMENT = "document", "Document"
    STICKER = "sticker", "Sticker"
    LOCATION = "location", "Location"
    CONTACTS = "contacts", "Contacts"
    INTERACTIVE = "interactive", "Interactive reply"
    BUTTON = "button", "Button"
    POSTBACK = "postback", "Postback"
    REACTION = "reaction", "Reaction"
    TEMPLATE = "template", "Template"
    UNSUPPORTED = "unsupported", "Unsupported"


class MessageStatus(models.TextChoices):
    # inbound
    RECEIVED = "received", "Received"
    PROCESSING = "processing", "Processing"
    ANSWERED = "answered", "Answered"
    SKIPPED = "skipped", "Skipped"
    # outbound
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    READ = "read", "Read"
    CANCELLED = "cancelled", "Cancelled"
    # both
    FAILED = "failed", "Failed"


INBOUND_PENDING = (MessageStatus.RECEIVED, MessageStatus.PROCESSING)


class Message(BaseModel):
    business = models.ForeignKey("businesses.Business", on_delete=models.CASCADE, related_name="messages")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    channel_account = models.ForeignKey(
        "channels_app.ChannelAccount", on_delete=models.CASCADE, related_name="messages"
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    author = models.CharField(max_length=10, choices=Author.choices)
    type = models.CharField(max_length=16, choices=MessageType.choices, default=MessageType.TEXT)
    text = models.TextField(blank=True)
    # Normalised content beyond text: media id/mime/caption, location, reply options …
    payload = models.JSONField(default=dict, blank=True)
    # The provider's item exactly as received (inbound) or the send response (outbound).
    raw = models.JSONField(default=dict, blank=True)
    # The channel's message id (wamid, mid, or the API client's id): the idempotency key.
    external_id = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 (NULL: no id yet)
    reply_to_external_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=12, choices=MessageStatus.choices)
    error_code = models.CharField(max_length=32, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    stage = models.ForeignKey(
        "stages.Stage",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Stage the conversation was in when this message was answered or written.",
    )
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_timestamp = models.DateTimeField(null=True, blank=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(direction__in=Direction.values), name="message_direction_valid"
            ),
            models.CheckConstraint(condition=Q(author__in=Author.values), name="message_author_valid"),
            models.CheckConstraint(condition=Q(status__in=MessageStatus.values), name="message_status_valid"),
            # Meta redelivers for up to 7 days, sometimes concurrently: the
            # channel's message id is our idempotency key.
            models.UniqueConstraint(
                fields=["channel_account", "external_id"],
                condition=Q(external_id__isnull=False),
                name="message_unique_external_id",
            ),
        ]
        indexes = [
            # Transcript: a conversation's messages in order (and the recent-history window).
            models.Index(fields=["conversation", "created_at", "id"], name="message_conv_created"),
            # The sweeper: inbound messages stuck in received/processing, oldest first.
            models.Index(
                fields=["status", "created_at"],
                condition=Q(status__in=["received", "processing", "queued", "sending"]),
                name="message_pending_idx",
            ),
            # Admin message list per business, newest first.
            models.Index(fields=["business", "-created_at"], name="message_business_created"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.type} {self.id}"


class LLMPurpose(models.TextChoices):
    SELECTION = "selection", "Stage selection"
    EXTRACTION = "extraction", "Data extraction"
    EXTRACTION_REASK = "extraction_reask", "Data extraction re-ask"
    RESPONSE = "response", "Response generation"


class LLMOutcome(models.TextChoices):
    OK = "ok", "OK"
    INVALID = "invalid", "Invalid output"
    ERROR = "error", "Error"


class LLMCall(BaseModel):
    """One LLM request: the ledger behind usage, cost and debugging."""

    business = models.ForeignKey("businesses.Business", on_delete=models.CASCADE, related_name="llm_calls")
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_calls"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="llm_calls"
    )
    stage = models.ForeignKey(
        "stages.Stage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    template = models.ForeignKey(
        "templates_app.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="llm_calls",
    )
    template_version = models.PositiveIntegerField(null=True, blank=True)
    purpose = models.CharField(max_length=20, choices=LLMPurpose.choices)
    model = models.CharField(max_length=100)
    base_url_host = models.CharField(max_length=255, blank=True)
    request_messages = models.JSONField(default=list, blank=True)
    response_text = models.TextField(blank=True)
    response_json = models.JSONField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=LLMOutcome.choices)
    error = models.TextField(blank=True)
    dry_run = models.BooleanField(default=False)

    class Meta:
        verbose_name = "LLM call"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(purpose__in=LLMPurpose.values), name="llmcall_purpose_valid"),
            models.CheckConstraint(condition=Q(outcome__in=LLMOutcome.values), name="llmcall_outcome_valid"),
        ]
        indexes = [
            # llm-calls/ list and usage/ aggregation for a business by time.
            models.Index(fields=["business", "-created_at", "-id"], name="llmcall_business_created"),
            # The calls of one conversation (admin inbox, conversation filter).
            models.Index(fields=["conversation", "created_at"], name="llmcall_conversation"),
            # prune_llm_calls --older-than DAYS.
            models.Index(fields=["created_at"], name="llmcall_created"),
        ]

    def __str__(self) -> str:
        return f"{self.purpose} {self.model} {self.id}"
