"""`prune_llm_calls` (ledger retention) and `chat` (the terminal simulator over the real pipeline)."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.models import ChannelAccount, ChannelKind
from conversations.models import (
    AIMode,
    Author,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    LLMCall,
    LLMOutcome,
    LLMPurpose,
    Message,
    MessageStatus,
)
from tests.fakes.openai_server import fake_llm  # noqa: F401 (fixture)
from tests.pipeline.conftest import bakery, fake, platform_templates  # noqa: F401 (fixtures)

# --- prune_llm_calls ---------------------------------------------------------------------


def old_call(tenant, *, days: float) -> LLMCall:
    call = LLMCall.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        purpose=LLMPurpose.RESPONSE,
        model="gpt-4o-mini",
        outcome=LLMOutcome.OK,
    )
    LLMCall.objects.filter(pk=call.pk).update(created_at=timezone.now() - timedelta(days=days))
    return call


def prune(*args: str) -> str:
    out = io.StringIO()
    call_command("prune_llm_calls", *args, stdout=out)
    return out.getvalue()


def remaining() -> set:
    return set(LLMCall.objects.values_list("pk", flat=True))


def test_calls_older_than_the_cutoff_are_deleted_and_recent_ones_kept(alice, bob):
    alice_old, bob_old = old_call(alice, days=40), old_call(bob, days=31)
    alice_recent = old_call(alice, days=29)

    output = prune("--older-than", "30")

    assert "Deleted 2 LLM calls older than 30 days (all businesses)." in output
    assert remaining() == {alice_recent.pk, alice.llm_call.pk, bob.llm_call.pk}
    assert not LLMCall.objects.filter(pk__in=[alice_old.pk, bob_old.pk]).exists()


def test_deletes_run_in_batches(alice):
    for _ in range(5):
        old_call(alice, days=90)

    with CaptureQueriesContext(connection) as queries:
        output = prune("--older-than", "30", "--batch-size", "2")

    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3  # 2 + 2 + 1
    assert "Deleted 5 LLM calls" in output
    assert remaining() == {alice.llm_call.pk}


@pytest.mark.parametrize("ref", ["slug", "pk"])
def test_business_limits_the_prune_to_that_business(alice, bob, ref):
    old_call(alice, days=60)
    bob_old = old_call(bob, days=60)

    output = prune("--older-than", "30", "--business", str(getattr(alice.business, ref)))

    assert f"Deleted 1 LLM calls older than 30 days ({alice.business.slug})." in output
    assert remaining() == {alice.llm_call.pk, bob.llm_call.pk, bob_old.pk}


def test_a_dry_run_counts_and_deletes_nothing(alice, bob):
    old_call(alice, days=60)
    old_call(bob, days=60)
    before = remaining()

    output = prune("--older-than", "30", "--dry-run")

    assert "Would delete 2 LLM calls older than 30 days (all businesses); nothing was deleted." in output
    assert remaining() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "0"], "at least 1 day"),
        (["--older-than", "-3"], "at least 1 day"),
        (["--older-than", "abc"], "whole number of days"),
        (["--older-than", "1.5"], "whole number of days"),
        ([], "--older-than"),
        (["--older-than", "30", "--business", "no-such-business"], "No business"),
        (["--older-than", "30", "--batch-size", "0"], "--batch-size"),
    ],
)
def test_bad_arguments_are_a_command_error_and_delete_nothing(alice, args, message):
    old_call(alice, days=400)
    before = remaining()

    with pytest.raises(CommandError, match=message):
        prune(*args)

    assert remaining() == before


# --- chat ----------------------------------------------------------------------------------


def chat(business, script: str, *args: str) -> str:
    out = io.StringIO()
    call_command("chat", "--business", business.slug, *args, stdin=io.StringIO(script), stdout=out)
    return out.getvalue()


def chat_conversations(business, contact: str = "chat-cli") -> list[Conversation]:
    return list(
        Conversation.objects.filter(
            business=business, contact__external_id=contact, channel_account__kind=ChannelKind.API
        ).order_by("created_at")
    )


def turn_line(calls: list[LLMCall]) -> str:
    prompt = sum(c.prompt_tokens for c in calls)
    completion = sum(c.completion_tokens for c in calls)
    cached = sum(c.cached_tokens for c in calls)
    cost = sum((c.cost for c in calls), Decimal(0))
    return (
        f"  tokens: {prompt} prompt ({cached} cached) + {completion} completion · cost: ${cost.normalize():f}"
    )


def test_a_scripted_chat_prints_replies_stage_data_and_tokens(bakery, fake):  # noqa: F811
    business = bakery.tenant.business
    # Turn 1: a greeting that becomes a booking (general collects nothing: selection first).
    fake.on("selection", {"stage": "booking"}, {"stage": "booking"})
    fake.on(
        "extraction",
        {"name": "Ana", "date": None, "party_size": 4},
        {"name": "Ana", "date": "2026-05-01", "party_size": 4},
    )
    fake.on(
        "response",
        {"reply": "Happy to book for Ana! Which day?", "quick_replies": ["Today", "Tomorrow"]},
        {"reply": "See you on May 1st.", "quick_replies": []},
    )

    output = chat(
        business, "Hello, table for Ana and 3 friends\n2026-05-01 please\n/data\n/quit\nnever read\n"
    )

    (conversation,) = chat_conversations(business)
    inbound = list(conversation.messages.filter(direction=Direction.IN).order_by("created_at", "id"))
    assert [(m.text, m.author, m.status) for m in inbound] == [
        ("Hello, table for Ana and 3 friends", Author.CUSTOMER, MessageStatus.ANSWERED),
        ("2026-05-01 please", Author.CUSTOMER, MessageStatus.ANSWERED),
    ]
    assert all(m.external_id.startswith("api.") for m in inbound)
    account = conversation.channel_account
    assert (account.kind, account.name) == (ChannelKind.API, "API")
    replies = list(conversation.messages.filter(direction=Direction.OUT).order_by("created_at", "id"))
    assert [(m.author, m.text) for m in replies] == [
        (Author.AI, "Happy to book for Ana! Which day?"),
        (Author.AI, "See you on May 1st."),
    ]
    first_calls = list(LLMCall.objects.filter(message=inbound[0]).order_by("created_at", "id"))
    second_calls = list(LLMCall.objects.filter(message=inbound[1]).order_by("created_at", "id"))
    assert [c.purpose for c in first_calls] == ["selection", "extraction", "response"]
    assert len(second_calls) == 3

    lines = output.splitlines()
    first = lines.index("you> Hello, table for Ana and 3 friends")
    second = lines.index("you> 2026-05-01 please")
    data = lines.index("you> /data")
    turn_1, turn_2 = lines[first + 1 : second], lines[second + 1 : data]
    assert turn_1[:5] == [
        "bot> Happy to book for Ana! Which day?",
        "     [Today | Tomorrow]",
        "  stage: booking (was general)",
        '  data: name="Ana", party_size=4',
        turn_line(first_calls),
    ]
    assert turn_1[5].startswith("  llm: 3 calls (selection ")
    assert " ms, extraction " in turn_1[5] and " ms, response " in turn_1[5]
    assert turn_2[:4] == [
        "bot> See you on May 1st.",
        "  stage: booking",
        '  data: date="2026-05-01"',
        turn_line(second_calls),
    ]
    shown = json.loads("\n".join(lines[data + 1 : lines.index("you> /quit")]))
    assert lines[-1] == "Bye."
    assert shown == {"name": "Ana", "date": "2026-05-01", "party_size": 4}
    assert "never read" not in output
    assert len(fake.requests) == 6


def test_a_model_without_a_price_shows_an_unknown_cost(bakery, fake, settings):  # noqa: F811
    settings.LLM_PRICES = {}

    output = chat(bakery.tenant.business, "Hi\n")

    assert "cost: unknown (model not in LLM_PRICES)" in output
    assert output.rstrip().endswith("Bye.")  # EOF ends the chat like /quit


def test_without_an_llm_the_chat_says_so_and_the_message_is_skipped_and_flagged(alice):
    output = chat(alice.business, "Hello\n", "--contact", "tester-1", "--name", "Tess")

    assert "No LLM is configured" in output
    assert "(no reply: No LLM is configured" in output
    assert "  flagged for staff: No LLM is configured" in output
    assert "  llm: no calls" in output
    (conversation,) = chat_conversations(alice.business, "tester-1")
    assert conversation.contact.name == "Tess"
    assert conversation.needs_human is True
    message = conversation.messages.get()
    assert (message.direction, message.status) == (Direction.IN, MessageStatus.SKIPPED)
    assert not LLMCall.objects.filter(conversation=conversation).exists()


def test_reset_closes_the_conversation_and_the_next_message_opens_a_new_one(alice):
    output = chat(alice.business, "First\n/reset\nSecond\n/data\n/quit\n")

    first, second = chat_conversations(alice.business)
    assert first.status == ConversationStatus.CLOSED and first.closed_at is not None
    assert second.status == ConversationStatus.OPEN
    assert [m.text for m in first.messages.all()] == ["First"]
    assert [m.text for m in second.messages.all()] == ["Second"]
    assert f"New conversation {second.pk}" in output
    assert "No data collected yet." in output


def test_the_same_contact_continues_its_open_conversation_and_reuses_the_api_account(alice):
    chat(alice.business, "One\n")
    output = chat(alice.business, "Two\n")

    (conversation,) = chat_conversations(alice.business)
    assert conversation.messages.count() == 2
    assert f"Conversation {conversation.pk}" in output
    assert ChannelAccount.objects.filter(business=alice.business, kind=ChannelKind.API).count() == 1
    assert Contact.objects.filter(business=alice.business, external_id="chat-cli").count() == 1


def test_a_paused_conversation_is_announced(alice):
    chat(alice.business, "One\n")
    Conversation.objects.filter(business=alice.business, contact__external_id="chat-cli").update(
        ai_mode=AIMode.PAUSED, handoff_reason="Staff took over"
    )

    output = chat(alice.business, "")

    assert "The AI is paused on this conversation (Staff took over)" in output


def test_an_unknown_business_is_a_command_error(db):
    with pytest.raises(CommandError, match="No business"):
        call_command("chat", "--business", "nope", stdin=io.StringIO(""), stdout=io.StringIO())


def test_the_chat_never_touches_another_businesss_conversations(alice, bob):
    chat(alice.business, "Hello\n")

    assert Conversation.objects.filter(business=bob.business).count() == 1
    assert Message.objects.filter(business=bob.business).count() == 2
    assert not ChannelAccount.objects.filter(business=bob.business, kind=ChannelKind.API).exists()
