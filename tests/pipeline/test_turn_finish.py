"""The end of a turn (conversations/turns.py): one transaction writes the ledger, the
conversation, the reply and the statuses, and gives the lease back when nothing else is
pending. What happens during the LLM wait is simulated by wrapping `turn_think`."""

from __future__ import annotations

import pytest

from conversations import turns
from conversations.models import AIMode, Conversation, Direction, LLMCall, Message, MessageStatus
from conversations.turns import conversation_turn_process


@pytest.fixture
def during_the_llm_wait(monkeypatch):
    """`during_the_llm_wait(fn)`: run `fn()` once, after the model answered, before the turn's writes."""

    def install(fn):
        real = turns.turn_think
        calls = []

        def wrapped(**kwargs):
            plan = real(**kwargs)
            if not calls:
                calls.append(1)
                fn()
            return plan

        monkeypatch.setattr(turns, "turn_think", wrapped)

    return install


def run_turns(bakery, capture_callbacks):
    with capture_callbacks(execute=True):
        return conversation_turn_process(conversation_id=bakery.conversation.pk, wait_for_burst=False)


def replies(bakery) -> list[Message]:
    return list(
        Message.objects.filter(conversation=bakery.conversation, direction=Direction.OUT, author="ai")
        .exclude(text="Hi! How can I help?")  # the tenancy fixture's own
        .order_by("created_at")
    )


def test_a_message_that_arrives_during_the_turn_keeps_the_lease_for_the_next_turn(
    bakery, fake, fake_graph, during_the_llm_wait, django_capture_on_commit_callbacks
):
    first = bakery.say("Hi")
    later = []
    during_the_llm_wait(lambda: later.append(bakery.say("Are you open on Sunday?")))

    outcome = run_turns(bakery, django_capture_on_commit_callbacks)

    assert (outcome.status, outcome.turns) == ("done", 2)
    for message in (first, *later):
        message.refresh_from_db()
        assert message.status == MessageStatus.ANSWERED
    assert len(replies(bakery)) == 2
    assert Conversation.objects.get(pk=bakery.conversation.pk).turn_lease_until is None


def test_a_pause_during_the_turn_skips_the_reply_and_gives_the_lease_back(
    bakery, fake, fake_graph, during_the_llm_wait, django_capture_on_commit_callbacks
):
    message = bakery.say("Hi")
    pause = Conversation.objects.filter(pk=bakery.conversation.pk)
    during_the_llm_wait(lambda: pause.update(ai_mode=AIMode.PAUSED))

    outcome = run_turns(bakery, django_capture_on_commit_callbacks)

    assert outcome.status == "done"
    message.refresh_from_db()
    assert message.status == MessageStatus.SKIPPED
    assert message.error == "The AI was paused during the turn."
    assert replies(bakery) == []
    conversation = Conversation.objects.get(pk=bakery.conversation.pk)
    assert conversation.turn_lease_until is None and conversation.turn_lease_token is None
    assert conversation.ai_turns == 1  # the turn happened; its ledger rows are kept
    assert LLMCall.objects.filter(conversation=conversation, message=message).count() == 2


def test_a_staff_edit_of_the_collected_data_during_the_turn_is_not_lost(
    bakery, fake, fake_graph, during_the_llm_wait, django_capture_on_commit_callbacks
):
    Conversation.objects.filter(pk=bakery.conversation.pk).update(stage=bakery.booking)
    fake.on("selection", {"stage": "booking"})
    fake.on("extraction", {"name": "Ana", "date": None, "party_size": None})
    fake.on("response", {"reply": "Thanks Ana! For how many?", "quick_replies": []})
    message = bakery.say("I'm Ana")
    staff_edit = Conversation.objects.filter(pk=bakery.conversation.pk)
    during_the_llm_wait(lambda: staff_edit.update(collected_data={"phone": "+4470000"}))

    run_turns(bakery, django_capture_on_commit_callbacks)

    conversation = Conversation.objects.get(pk=bakery.conversation.pk)
    assert conversation.collected_data == {"phone": "+4470000", "name": "Ana"}
    assert conversation.collected_data_sources["name"]["message_id"] == str(message.pk)
    assert [r.text for r in replies(bakery)] == ["Thanks Ana! For how many?"]


def test_the_ledger_rows_stay_when_the_turns_transaction_fails(
    bakery, fake, fake_graph, monkeypatch, django_capture_on_commit_callbacks
):
    message = bakery.say("Hi")

    def broken(**kwargs):
        raise RuntimeError("the database said no")

    monkeypatch.setattr(turns, "message_outbound_create", broken)

    with pytest.raises(RuntimeError):
        run_turns(bakery, django_capture_on_commit_callbacks)

    assert LLMCall.objects.filter(conversation=bakery.conversation, message=message).count() == 2
    message.refresh_from_db()
    assert message.status == MessageStatus.PROCESSING  # rolled back: the next run tries again
    conversation = Conversation.objects.get(pk=bakery.conversation.pk)
    assert conversation.ai_turns == 0 and conversation.turn_lease_until is None
