"""`manage.py chat --business <slug|id> [--contact ID] [--name NAME]`: talk to the assistant.

Each line is stored as a customer message on the business's API channel
account (the same storing code as POST /api/v1/channels/api/messages/), then
answered synchronously by the real turn (`conversation_turn_process`), with
the real LLM client. Per turn it prints the reply, the stage, the data merged
and what the LLM calls cost, like `rasa shell`. Reads stdin line by line, so a
script can be piped in.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from decimal import Decimal
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from businesses.management import business_from_ref
from businesses.models import AIControlSettings, Business
from channels_app.adapters.api import new_id
from channels_app.adapters.base import InboundMessage
from channels_app.adapters.base import MessageType as InboundType
from conversations.channel_api import api_channel_account_get
from conversations.inbound import (
    contact_upsert,
    conversation_open_get_or_create,
    inbound_message_store,
)
from conversations.llm.client import llm_configured
from conversations.models import (
    AIMode,
    Conversation,
    ConversationStatus,
    Direction,
    LLMCall,
    Message,
)
from conversations.turns import conversation_turn_process

DEFAULT_CONTACT = "chat-cli"
# Another process (a Celery worker) may hold the conversation's turn lease.
BUSY_WAIT_SECONDS = 60.0
BUSY_POLL_SECONDS = 0.5
NO_LLM_WARNING = (
    "No LLM is configured (set OPENAI_API_KEY, or OPENAI_BASE_URL for an OpenAI-compatible "
    "server): messages are stored but not answered; each is marked skipped and the "
    "conversation is flagged for staff."
)
HELP = "Commands: /data shows the collected data, /reset starts a new conversation, /quit ends."


def _money(value: Decimal) -> str:
    return f"${value.normalize():f}" if value else "$0"


class Command(BaseCommand):
    help = "Chat with a business's assistant in the terminal through the API channel and the real pipeline."
    # call_command(..., stdin=io.StringIO(...)) feeds a scripted conversation (tests).
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--business", required=True, help="The business's slug or id.")
        parser.add_argument(
            "--contact",
            default=DEFAULT_CONTACT,
            help=f"The customer's id on the API channel (default {DEFAULT_CONTACT!r}); "
            "the same id continues its open conversation.",
        )
        parser.add_argument("--name", default="", help="The customer's name.")

    def handle(self, *args: Any, **options: Any) -> None:
        business = business_from_ref(options["business"])
        self.contact_id = (options["contact"] or "").strip() or DEFAULT_CONTACT
        self.contact_name = (options["name"] or "").strip()
        stream: IO[str] = options.get("stdin") or sys.stdin
        interactive = stream.isatty()

        with transaction.atomic():
            self.account = api_channel_account_get(business=business, channel_account_id=None)
        conversation = self._conversation()
        self._intro(business, conversation)

        while True:
            if interactive:
                self.stdout.write("you> ", ending="")
                self.stdout.flush()
            line = stream.readline()
            if not line:  # EOF
                if interactive:
                    self.stdout.write("")
                break
            text = line.strip()
            if not text:
                continue
            if not interactive:
                self.stdout.write(f"you> {text}")
            if text == "/quit":
                break
            if text == "/data":
                self._data_show(self._conversation())
            elif text == "/reset":
                self._reset()
            elif text in ("/help", "/?"):
                self.stdout.write(HELP)
            else:
                self._turn(text)
        self.stdout.write("Bye.")

    # --- conversation -----------------------------------------------------------------

    def _conversation(self) -> Conversation:
        """The contact's open conversation (opened like an inbound message would)."""
        contact = contact_upsert(account=self.account, external_id=self.contact_id, name=self.contact_name)
        conversation = conversation_open_get_or_create(account=self.account, contact=contact)
        return Conversation.objects.select_related("stage").get(pk=conversation.pk)

    def _intro(self, business: Business, conversation: Conversation) -> None:
        self.stdout.write(
            f"Chatting with {business.name} as {self.contact_id!r} on the API channel account "
            f"{self.account.name!r}."
        )
        self.stdout.write(f"Conversation {conversation.pk}, stage {self._stage_key(conversation)}.")
        self.stdout.write(HELP)
        if not llm_configured():
            self.stdout.write(self.style.WARNING(NO_LLM_WARNING))
        settings = AIControlSettings.objects.filter(business=business).first()
        if settings is not None and not settings.auto_reply_enabled:
            self.stdout.write(self.style.WARNING("Auto-reply is off for this business: nothing will answer."))
        if conversation.ai_mode == AIMode.PAUSED:
            self.stdout.write(
                self.style.WARNING(
                    f"The AI is paused on this conversation ({conversation.handoff_reason or 'by staff'}); "
                    "/reset starts a new one."
                )
            )

    def _reset(self) -> None:
        now = timezone.now()
        Conversation.objects.filter(
            contact__channel_account=self.account,
            contact__external_id=self.contact_id,
            status=ConversationStatus.OPEN,
        ).update(status=ConversationStatus.CLOSED, closed_at=now, updated_at=now)
        conversation = self._conversation()
        self.stdout.write(f"New conversation {conversation.pk}, stage {self._stage_key(conversation)}.")

    def _data_show(self, conversation: Conversation) -> None:
        data = conversation.collected_data or {}
        if not data:
            self.stdout.write("No data collected yet.")
            return
        self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True, default=str))

    @staticmethod
    def _stage_key(conversation: Conversation) -> str:
        return conversation.stage.key if conversation.stage is not None else "(none)"

    # --- one turn ---------------------------------------------------------------------

    def _store(self, text: str) -> Message:
        # What api_channel_message_receive does, minus the enqueue: this command runs the
        # turn itself, so it works without Celery and never races its own task.
        item = InboundMessage(
            routing_id=self.account.external_id,
            contact_external_id=self.contact_id,
            contact_name=self.contact_name,
            external_id=new_id(),
            timestamp=timezone.now(),
            type=InboundType.TEXT,
            text=text,
            payload={},
            raw={"contact": self.contact_id, "text": text, "name": self.contact_name},
        )
        with transaction.atomic():
            stored = inbound_message_store(account=self.account, item=item, enqueue=False)
        return stored.message

    def _process(self, conversation_id: Any) -> None:
        deadline = time.monotonic() + BUSY_WAIT_SECONDS
        while True:
            outcome = conversation_turn_process(conversation_id=conversation_id, wait_for_burst=False)
            if outcome.status not in ("busy", "more") or time.monotonic() > deadline:
                return
            if outcome.status == "busy":
                time.sleep(BUSY_POLL_SECONDS)

    def _turn(self, text: str) -> None:
        before = self._conversation()
        message = self._store(text)
        started_at = timezone.now()
        started = time.monotonic()
        self._process(message.conversation_id)
        elapsed = time.monotonic() - started

        message.refresh_from_db(fields=["status", "error"])
        after = Conversation.objects.select_related("stage").get(pk=message.conversation_id)
        replies = list(
            Message.objects.filter(
                conversation_id=message.conversation_id, direction=Direction.OUT, created_at__gte=started_at
            ).order_by("created_at", "id")
        )
        for reply in replies:
            label = "bot" if reply.author == "ai" else reply.author
            self.stdout.write(self.style.SUCCESS(f"{label}> {reply.text}"))
            options = (reply.payload or {}).get("quick_replies") or []
            if options:
                self.stdout.write(f"     [{' | '.join(options)}]")
        if not replies:
            why = message.error or f"the message is {message.status}"
            self.stdout.write(self.style.WARNING(f"(no reply: {why})"))

        self._stage_line(before, after)
        self._data_line(before, after)
        self._calls_line(after, since=started_at, elapsed=elapsed)
        if after.ai_mode == AIMode.PAUSED and before.ai_mode != AIMode.PAUSED:
            self.stdout.write(
                self.style.WARNING(
                    f"  handed to staff: {after.handoff_reason or 'AI paused'} (/reset starts over)"
                )
            )
        elif after.needs_human and not before.needs_human:
            self.stdout.write(self.style.WARNING(f"  flagged for staff: {after.handoff_reason}"))

    def _stage_line(self, before: Conversation, after: Conversation) -> None:
        key = self._stage_key(after)
        if before.stage_id != after.stage_id:
            self.stdout.write(f"  stage: {key} (was {self._stage_key(before)})")
        else:
            self.stdout.write(f"  stage: {key}")

    def _data_line(self, before: Conversation, after: Conversation) -> None:
        old, new = before.collected_data or {}, after.collected_data or {}
        changed = {k: v for k, v in new.items() if k not in old or old[k] != v}
        if changed:
            shown = ", ".join(
                f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in changed.items()
            )
            self.stdout.write(f"  data: {shown}")
        else:
            self.stdout.write("  data: (nothing new)")

    def _calls_line(self, conversation: Conversation, *, since: datetime, elapsed: float) -> None:
        calls = list(
            LLMCall.objects.filter(conversation=conversation, created_at__gte=since)
            .order_by("created_at", "id")
            .only(
                "purpose",
                "outcome",
                "prompt_tokens",
                "completion_tokens",
                "cached_tokens",
                "latency_ms",
                "cost",
            )
        )
        if not calls:
            self.stdout.write(f"  llm: no calls · turn {elapsed:.2f} s")
            return
        prompt = sum(c.prompt_tokens or 0 for c in calls)
        completion = sum(c.completion_tokens or 0 for c in calls)
        cached = sum(c.cached_tokens or 0 for c in calls)
        # As in the ledger: calls that reported no usage were not billed; a billed call
        # without a price (a model missing from LLM_PRICES) makes the cost unknown.
        billed = [c for c in calls if c.prompt_tokens is not None or c.completion_tokens is not None]
        unpriced = [c for c in billed if c.cost is None]
        known = sum((c.cost for c in billed if c.cost is not None), Decimal(0))
        if unpriced and len(unpriced) == len(billed):
            cost = "unknown (model not in LLM_PRICES)"
        elif unpriced:
            cost = f"at least {_money(known)} ({len(unpriced)} calls unpriced)"
        else:
            cost = _money(known)
        latencies = ", ".join(
            f"{c.purpose} {c.latency_ms if c.latency_ms is not None else '?'} ms"
            + ("" if c.outcome == "ok" else f" [{c.outcome}]")
            for c in calls
        )
        self.stdout.write(
            f"  tokens: {prompt} prompt ({cached} cached) + {completion} completion · cost: {cost}"
        )
        self.stdout.write(f"  llm: {len(calls)} calls ({latencies}) · turn {elapsed:.2f} s")
