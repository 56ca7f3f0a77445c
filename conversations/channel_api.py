"""The generic API channel: a business's own site or app posts customer messages.

Same storage and processing path as Meta's webhooks (conversations.inbound):
contact, open conversation, one message per client_message_id, processing
enqueued after commit. `?wait=<seconds>` polls for the reply, so a simple
client needs one request per turn.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from businesses.models import Business
from channels_app.adapters.api import new_id
from channels_app.adapters.base import InboundMessage
from channels_app.adapters.base import MessageType as InboundType
from channels_app.models import ChannelAccount, ChannelKind
from channels_app.services import channel_account_create
from conversations.inbound import Outcome, StoredMessage, inbound_message_store
from conversations.models import Direction, Message, MessageStatus
from conversations.serializers import MessageSerializer
from icmp.api.serializers import ErrorSerializer, StrictFieldsMixin
from icmp.errors import ApplicationError

WAIT_MAX_SECONDS = 30
WAIT_POLL_SECONDS = 0.2
DEFAULT_ACCOUNT_NAME = "API"


class ChannelMessageInSerializer(StrictFieldsMixin, serializers.Serializer):
    """A customer message posted by the business's own site or app."""

    contact = serializers.CharField(
        max_length=128, help_text="Your id for the customer; one contact per id and channel account."
    )
    text = serializers.CharField(max_length=4096, help_text="What the customer wrote.")
    name = serializers.CharField(
        max_length=200, required=False, allow_blank=True, help_text="The customer's name, if known."
    )
    client_message_id = serializers.CharField(
        max_length=255,
        required=False,
        help_text="Idempotency key: posting the same id again returns the original message "
        "(200, duplicate=true) instead of storing it twice.",
    )
    channel_account = serializers.UUIDField(
        required=False,
        help_text="One of your API channel accounts; default: the first active one "
        "(created as “API” on first use).",
    )


class ChannelMessageAcceptedSerializer(serializers.Serializer):
    message = serializers.UUIDField(help_text="The stored customer message.")
    conversation = serializers.UUIDField()
    status = serializers.CharField(help_text="The customer message's status (received, answered, …).")
    duplicate = serializers.BooleanField(help_text="True when client_message_id was seen before.")
    reply = MessageSerializer(
        allow_null=True, help_text="With ?wait: the first reply after this message, or null if none yet."
    )


def api_channel_account_get(*, business: Business, channel_account_id: uuid.UUID | None) -> ChannelAccount:
    """The named active API account of this business, or its first one (created on first use)."""
    accounts = ChannelAccount.objects.filter(business=business, kind=ChannelKind.API, is_active=True)
    if channel_account_id is not None:
        account = accounts.filter(pk=channel_account_id).select_related("business").first()
        if account is None:
            raise ApplicationError(
                "Unknown or inactive API channel account.", code="invalid", field="channel_account"
            )
        return account
    account = accounts.order_by("created_at", "id").select_related("business").first()
    if account is None:
        # Serialise first use so two concurrent first messages open one account, not two.
        Business.objects.select_for_update().filter(pk=business.pk).first()
        account = accounts.order_by("created_at", "id").select_related("business").first()
        if account is None:
            account = channel_account_create(
                business=business, kind=ChannelKind.API, name=DEFAULT_ACCOUNT_NAME
            )
    return account


@transaction.atomic
def api_channel_message_receive(
    *,
    business: Business,
    contact: str,
    text: str,
    name: str = "",
    client_message_id: str | None = None,
    channel_account: uuid.UUID | None = None,
) -> StoredMessage:
    account = api_channel_account_get(business=business, channel_account_id=channel_account)
    item = InboundMessage(
        routing_id=account.external_id,
        contact_external_id=contact,
        contact_name=name,
        external_id=client_message_id or new_id(),
        timestamp=timezone.now(),
        type=InboundType.TEXT,
        text=text,
        payload={"client_message_id": client_message_id} if client_message_id else {},
        raw={"contact": contact, "text": text, "name": name, "client_message_id": client_message_id},
    )
    stored = inbound_message_store(account=account, item=item)
    if stored.outcome == Outcome.DUPLICATE and stored.message.conversation.contact.external_id != contact:
        raise ApplicationError(
            "This client_message_id was already used for another contact.",
            code="conflict",
            field="client_message_id",
            status_code=409,
        )
    return stored


def message_reply_wait(*, message: Message, seconds: float) -> Message | None:
    """The first outbound message after `message` in its conversation, polling up to `seconds`.

    Stops early when the message ended without a reply (skipped or failed: staff will answer).
    """
    later = Message.objects.filter(
        conversation_id=message.conversation_id, direction=Direction.OUT, created_at__gte=message.created_at
    ).exclude(created_at=message.created_at, id__lte=message.id)
    ended = Message.objects.filter(pk=message.pk, status__in=(MessageStatus.SKIPPED, MessageStatus.FAILED))
    deadline = time.monotonic() + seconds
    while True:
        reply = later.order_by("created_at", "id").first()
        remaining = deadline - time.monotonic()
        if reply is not None or remaining <= 0 or ended.exists():
            return reply
        time.sleep(min(WAIT_POLL_SECONDS, remaining))


def _wait_seconds(request: Request) -> float | None:
    raw = request.query_params.get("wait")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= WAIT_MAX_SECONDS:
        raise ApplicationError(
            f"wait must be a number of seconds from 0 to {WAIT_MAX_SECONDS}.", code="invalid", field="wait"
        )
    return seconds


class ChannelApiMessageApi(APIView):
    @extend_schema(
        tags=["channels"],
        summary="Post a customer message (generic API channel)",
        description="Stores the message like a Meta webhook would (contact, open conversation, "
        "message) and queues it for the assistant. Repeating a client_message_id returns the "
        "original ids (200). With `?wait=<seconds>` (0–30) the answer includes the reply when it "
        "is ready within that time.",
        parameters=[
            OpenApiParameter(
                "wait",
                OpenApiTypes.NUMBER,
                OpenApiParameter.QUERY,
                description="Seconds (0–30) to wait for the reply.",
            )
        ],
        request=ChannelMessageInSerializer,
        responses={
            202: ChannelMessageAcceptedSerializer,
            200: OpenApiResponse(
                ChannelMessageAcceptedSerializer, description="A repeated client_message_id."
            ),
            400: OpenApiResponse(ErrorSerializer, description="Invalid input"),
            409: OpenApiResponse(ErrorSerializer, description="client_message_id used for another contact"),
        },
    )
    def post(self, request: Request) -> Response:
        wait = _wait_seconds(request)
        body = ChannelMessageInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        stored = api_channel_message_receive(business=request.auth.business, **body.validated_data)
        # Outside the transaction: processing starts at commit, the reply lands later.
        message = stored.message
        reply = message_reply_wait(message=message, seconds=wait) if wait is not None else None
        message.refresh_from_db(fields=["status"])
        data: dict[str, Any] = {
            "message": message.pk,
            "conversation": message.conversation_id,
            "status": message.status,
            "duplicate": stored.outcome == Outcome.DUPLICATE,
            "reply": reply,
        }
        return Response(
            ChannelMessageAcceptedSerializer(data).data,
            status=status.HTTP_200_OK if data["duplicate"] else status.HTTP_202_ACCEPTED,
        )
