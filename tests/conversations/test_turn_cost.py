"""What a turn costs the database: at most 12 queries, the reply's inline send included,
whatever the length of the conversation (bench/bench_turn_cost.py measures the same on
PostgreSQL, with the CPU)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from businesses.models import AIControlSettings
from conversations.models import Author, Conversation, Direction, LLMCall, Message, MessageStatus
from conversations.turns import conversation_turn_process
from stages.models import Stage

MAX_QUERIES_PER_TURN = 12
# A cold turn config cache reads the AI settings, the template defaults, the stages, the agents.
CONFIG_READS = 4


def _conversation(tenant, *, length: int, key: str) -> Conversation:
    """A conversation of `tenant` with `length - 1` answered messages and one new customer message."""
    conversation = Conversation.objects.create(
        business=tenant.business,
        contact=tenant.contact.__class__.objects.create(
            business=tenant.business, channel_account=tenant.channel, external_id=f"cost-{key}", name="Ana"
        ),
        channel_account=tenant.channel,
        stage=tenant.stage,
        last_inbound_at=timezone.now(),
    )
    Message.objects.bulk_create(
        Message(
            business=tenant.business,
            conversation=conversation,
            channel_account=tenant.channel,
            direction=Direction.IN if i % 2 == 0 else Direction.OUT,
            author=Author.CUSTOMER if i % 2 == 0 else Author.AI,
            text=f"Message {i}: can we book a table for four on Friday?",
            status=MessageStatus.ANSWERED if i % 2 == 0 else MessageStatus.SENT,
        )
        for i in range(length - 1)
    )
    Message.objects.filter(conversation=conversation).update(created_at=timezone.now() - timedelta(hours=1))
    Message.objects.create(
        business=tenant.business,
        conversation=conversation,
        channel_account=tenant.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text="And can we bring a birthday cake?",
        status=MessageStatus.RECEIVED,
    )
    return conversation


def _turn(conversation, capture_callbacks) -> tuple[object, list[str]]:
    """One turn under CaptureQueriesContext; the reply's send (after commit) runs inside it."""
    with CaptureQueriesContext(connection) as queries, capture_callbacks(execute=True):
        outcome = conversation_turn_process(conversation_id=conversation.pk, wait_for_burst=False)
    return outcome, [q["sql"] for q in queries.captured_queries]


@pytest.mark.parametrize("length", [2, 40, 400])
def test_a_turn_takes_at_most_12_queries_with_its_send_at_any_length(
    alice, fake_llm, fake_graph, django_capture_on_commit_callbacks, length
):
    _turn(_conversation(alice, length=3, key="warm"), django_capture_on_commit_callbacks)  # the cache
    conversation = _conversation(alice, length=length, key=str(length))

    outcome, queries = _turn(conversation, django_capture_on_commit_callbacks)

    assert outcome.status == "done" and outcome.turns == 1
    assert len(queries) <= MAX_QUERIES_PER_TURN, "\n".join(queries)
    # It did the whole turn: two LLM calls in the ledger, the reply sent, the lease given back.
    assert LLMCall.objects.filter(conversation=conversation).count() == 2
    reply = Message.objects.filter(conversation=conversation, direction=Direction.OUT).latest("created_at")
    assert reply.status == MessageStatus.SENT and reply.external_id
    assert Message.objects.get(
        conversation=conversation, status=MessageStatus.ANSWERED, text__startswith="And"
    )
    assert Conversation.objects.get(pk=conversation.pk).turn_lease_until is None
    assert any(r.body.get("text", {}).get("body") == reply.text for r in fake_graph.requests)


def test_a_cold_config_cache_costs_its_four_reads_once(
    alice, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    _, cold = _turn(_conversation(alice, length=10, key="cold"), django_capture_on_commit_callbacks)
    _, warm = _turn(_conversation(alice, length=10, key="warm"), django_capture_on_commit_callbacks)

    assert len(cold) == len(warm) + CONFIG_READS
    assert len(warm) <= MAX_QUERIES_PER_TURN


def test_a_turn_that_collects_data_under_a_monthly_budget_still_fits(
    alice, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    """The costliest common turn: extraction changes the collected data (one more UPDATE, under
    the row lock) and a monthly budget reads this month's tokens (one more SELECT)."""
    schema = {"type": "object", "properties": {"name": {"type": "string", "minLength": 1}}}
    Stage.objects.filter(pk=alice.stage.pk).update(data_schema=schema)
    AIControlSettings.objects.filter(business=alice.business).update(monthly_token_budget=1_000_000)
    fake_llm.on("extraction", {"name": "Ana"})
    _turn(_conversation(alice, length=3, key="warm"), django_capture_on_commit_callbacks)
    fake_llm.on("extraction", {"name": "Ana"})
    conversation = _conversation(alice, length=40, key="data")

    outcome, queries = _turn(conversation, django_capture_on_commit_callbacks)

    assert outcome.status == "done"
    assert len(queries) <= MAX_QUERIES_PER_TURN, "\n".join(queries)
    conversation.refresh_from_db()
    assert conversation.collected_data == {"name": "Ana"}
    assert LLMCall.objects.filter(conversation=conversation).count() == 3
