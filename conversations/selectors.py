"""Reads for contacts, conversations, messages and LLM calls. Every one is scoped to a business."""

from __future__ import annotations

from django.db.models import QuerySet

from businesses.models import Business
from conversations.models import Contact, Conversation, LLMCall, Message


def contact_list(*, business: Business) -> QuerySet[Contact]:
    return Contact.objects.filter(business=business)


def conversation_list(*, business: Business) -> QuerySet[Conversation]:
    # The list shows contact, channel kind and stage key: one query, not one per row.
    return Conversation.objects.filter(business=business).select_related(
        "contact", "channel_account", "stage"
    )


def message_list(*, conversation: Conversation) -> QuerySet[Message]:
    """The transcript; order comes from the paginator (created_at, id)."""
    return Message.objects.filter(conversation=conversation, business_id=conversation.business_id)


def llm_call_list(*, business: Business, with_payloads: bool = False) -> QuerySet[LLMCall]:
    calls = LLMCall.objects.filter(business=business)
    if not with_payloads:
        # Prompts and responses are large; only the detail view shows them.
        calls = calls.defer("request_messages", "response_text", "response_json")
    return calls
