"""The conversation page of the admin inbox: what it shows, and the staff actions it posts.

Everything shown here is put into the template as plain values: customer text
and model output are escaped by the template engine, never marked safe.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Substr
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse

from conversations.models import (
    AIMode,
    Author,
    Conversation,
    ConversationStatus,
    LLMCall,
    LLMPurpose,
    Message,
)
from conversations.pipeline.service import turn_totals
from conversations.services import (
    conversation_ai_pause,
    conversation_ai_resume,
    conversation_close,
    conversation_staff_reply,
)

TRANSCRIPT_LIMIT = 200
# WhatsApp's limit for a text message body; Messenger's is lower (2000) but the
# adapter reports that as a failed message with Meta's error.
STAFF_REPLY_MAX = 4096
# Which call of a turn says where the turn ended up: the reply is written in the chosen stage.
_STAGE_AUTHORITY = (LLMPurpose.RESPONSE, LLMPurpose.EXTRACTION_REASK, LLMPurpose.EXTRACTION)


class StaffReplyForm(forms.Form):
    text = forms.CharField(max_length=STAFF_REPLY_MAX, strip=True, widget=forms.Textarea(attrs={"rows": 3}))


def _turn_totals(calls: list[LLMCall]) -> dict[str, Any]:
    # The pipeline's own rule: an unpriced billed call makes the cost unknown, not low.
    prompt_tokens, completion_tokens, cost = turn_totals(calls)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
        "latency_ms": sum(c.latency_ms or 0 for c in calls),
    }


def _turn_stages(calls: list[LLMCall]) -> tuple[Any, Any]:
    """(stage the turn started in, stage it answered in), from its ledger rows."""
    selection = next((c for c in calls if c.purpose == LLMPurpose.SELECTION), None)
    answered = None
    for purpose in _STAGE_AUTHORITY:
        answered = next((c for c in reversed(calls) if c.purpose == purpose), None)
        if answered is not None:
            break
    start = selection.stage if selection is not None else None
    end = answered.stage if answered is not None else start
    return start, end or start


def _display_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _collected_rows(conversation: Conversation, by_id: dict[Any, Message]) -> list[dict[str, Any]]:
    data = conversation.collected_data or {}
    sources = conversation.collected_data_sources or {}
    wanted = set()
    for source in sources.values():
        try:
            wanted.add(uuid.UUID(str((source or {}).get("message_id"))))
        except (TypeError, ValueError, AttributeError):
            continue
    missing = [pk for pk in wanted if pk not in by_id]
    if missing:
        # Sources older than the transcript window: one query for all of them.
        by_id = by_id | {
            m.pk: m
            for m in Message.objects.filter(conversation=conversation, pk__in=missing).only(
                "id", "text", "created_at", "author"
            )
        }
    rows = []
    for key in sorted(data):
        source = sources.get(key) if isinstance(sources.get(key), dict) else {}
        try:
            message = by_id.get(uuid.UUID(str(source.get("message_id"))))
        except (TypeError, ValueError):
            message = None
        rows.append(
            {
                "key": key,
                "value": _display_value(data[key]),
                "source": message,
                "source_url": _message_url(message),
                "at": source.get("at", ""),
            }
        )
    return rows


def _message_url(message: Message | None) -> str:
    if message is None:
        return ""
    return reverse("admin:conversations_message_change", args=[message.pk])


def conversation_page_context(*, conversation: Conversation, can_act: bool) -> dict[str, Any]:
    """Transcript (grouped into turns), collected data with sources and stage history.

    Four queries whatever the length of the conversation: the last
    TRANSCRIPT_LIMIT messages, their LLM calls, and the sources outside that window.
    """
    recent = list(
        Message.objects.filter(conversation=conversation, business_id=conversation.business_id)
        .select_related("stage", "sent_by")
        .defer("raw")
        .order_by("-created_at", "-id")[:TRANSCRIPT_LIMIT]
    )
    recent.reverse()
    by_id = {m.pk: m for m in recent}
    calls_by_message: dict[Any, list[LLMCall]] = defaultdict(list)
    calls = (
        LLMCall.objects.filter(
            conversation=conversation, business_id=conversation.business_id, message_id__in=list(by_id)
        )
        .select_related("stage")
        .defer("request_messages", "response_text", "response_json")
        .order_by("created_at", "id")
    )
    for call in calls:
        call.admin_url = reverse("admin:conversations_llmcall_change", args=[call.pk])
        calls_by_message[call.message_id].append(call)

    entries = []
    history = []
    previous_stage = None
    for message in recent:
        turn_calls = calls_by_message.get(message.pk, [])
        entry: dict[str, Any] = {
            "message": message,
            "url": _message_url(message),
            "css": f"msg-{message.author}",
            "calls": turn_calls,
            "error": " ".join(filter(None, (message.error_code, message.error))),
        }
        if turn_calls:
            start, end = _turn_stages(turn_calls)
            entry["totals"] = _turn_totals(turn_calls)
            entry["stage"] = end
            history.append(
                {
                    "at": message.created_at,
                    "message": message,
                    "from": start or previous_stage,
                    "stage": end,
                    "changed": previous_stage is not None and end is not None and end != previous_stage,
                }
            )
            previous_stage = end or previous_stage
        elif message.author == Author.AI and message.stage is not None and message.stage != previous_stage:
            # A reply whose calls are not in view (pruned ledger): its own stage record.
            history.append(
                {
                    "at": message.created_at,
                    "message": message,
                    "from": previous_stage,
                    "stage": message.stage,
                    "changed": previous_stage is not None,
                }
            )
            previous_stage = message.stage
        entries.append(entry)

    return {
        "conversation": conversation,
        "entries": entries,
        "truncated": len(recent) == TRANSCRIPT_LIMIT,
        "limit": TRANSCRIPT_LIMIT,
        "collected": _collected_rows(conversation, by_id),
        "stage_history": history,
        "can_act": can_act,
        "is_paused": conversation.ai_mode == AIMode.PAUSED,
        "is_open": conversation.status == ConversationStatus.OPEN,
        "reply_form": StaffReplyForm() if can_act else None,
        "reply_max": STAFF_REPLY_MAX,
    }


def conversation_previews(*, conversation_ids: list[Any], length: int) -> dict[Any, tuple[str, str]]:
    """The last message (text cut to `length`, author) of each conversation, in one query.

    Two correlated subqueries on the (conversation, created_at) index per row of
    one page, not one query per row.
    """
    if not conversation_ids:
        return {}
    last = Message.objects.filter(conversation=OuterRef("pk")).order_by("-created_at", "-id")
    rows = (
        Conversation.objects.filter(pk__in=conversation_ids)
        .annotate(
            last_text=Substr(Subquery(last.values("text")[:1]), 1, length),
            last_author=Subquery(last.values("author")[:1]),
        )
        .values_list("pk", "last_text", "last_author")
    )
    return {pk: (text, author) for pk, text, author in rows}


def conversation_needs_human_count(*, queryset, cap: int) -> int:
    """How many open conversations of `queryset` wait for a person; `cap + 1` means "more than cap"."""
    waiting = queryset.filter(needs_human=True, status=ConversationStatus.OPEN).order_by()
    return waiting.values("pk")[: cap + 1].count()


# -- actions ------------------------------------------------------------------------


def _conversation_for_action(model_admin, request: HttpRequest, object_id: str) -> Conversation:
    # Another tenant's id is a 404 (get_object), a viewer's POST a 403.
    conversation = model_admin.get_object(request, unquote(object_id))
    if not model_admin.has_change_permission(request, conversation):
        raise PermissionDenied
    return conversation


def _back(conversation: Conversation) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("admin:conversations_conversation_change", args=[conversation.pk]))


def _done(model_admin, request: HttpRequest, conversation: Conversation, text: str) -> HttpResponse:
    model_admin.log_change(request, conversation, text)
    model_admin.message_user(request, text, messages.SUCCESS)
    return _back(conversation)


def conversation_action_view(model_admin, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    conversation = _conversation_for_action(model_admin, request, object_id)
    if action == "pause":
        if conversation.ai_mode == AIMode.PAUSED:
            model_admin.message_user(request, "The AI was already paused.", messages.INFO)
            return _back(conversation)
        conversation_ai_pause(conversation=conversation, by=request.user)
        return _done(model_admin, request, conversation, "AI paused: staff answer this conversation.")
    if action == "resume":
        conversation_ai_resume(conversation=conversation)
        return _done(model_admin, request, conversation, "AI resumed on this conversation.")
    if action == "close":
        if conversation.status == ConversationStatus.CLOSED:
            model_admin.message_user(request, "The conversation was already closed.", messages.INFO)
            return _back(conversation)
        conversation_close(conversation=conversation)
        return _done(model_admin, request, conversation, "Conversation closed.")
    if action == "reply":
        form = StaffReplyForm(request.POST)
        if not form.is_valid():
            problems = "; ".join(str(e) for errors in form.errors.values() for e in errors)
            model_admin.message_user(request, f"The reply was not sent: {problems}", messages.ERROR)
            return _back(conversation)
        conversation_staff_reply(conversation=conversation, text=form.cleaned_data["text"], user=request.user)
        return _done(
            model_admin,
            request,
            conversation,
            "Reply queued: it is sent through the channel, and the AI is paused.",
        )
    raise PermissionDenied
