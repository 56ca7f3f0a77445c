"""One turn at a time per conversation; the gate; the sweeper that recovers lost work."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import TestCase
from django.utils import timezone

from businesses.models import AIControlSettings
from conversations.models import (
    AIMode,
    Author,
    Conversation,
    Direction,
    Message,
    MessageStatus,
)
from conversations.sweeper import messages_sweep
from conversations.turns import MAX_PROCESS_ATTEMPTS, conversation_reprocess, conversation_turn_process


def _inbound(tenant, text="Hi there", age=timedelta(seconds=10), **fields) -> Message:
    message = Message.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        channel_account=tenant.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text=text,
        **{"status": MessageStatus.RECEIVED, **fields},
    )
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - age)
    message.refresh_from_db()
    return message


def test_without_an_llm_the_message_is_skipped_and_staff_are_flagged(alice):
    message = _inbound(alice)
    outbound_before = Message.objects.filter(direction=Direction.OUT).count()
    outcome = conversation_turn_process(conversation_id=alice.conversation.pk)
    assert outcome.status == "done"
    message.refresh_from_db()
    assert message.status == MessageStatus.SKIPPED
    assert "No LLM is configured" in message.error
    conversation = Conversation.objects.get(pk=alice.conversation.pk)
    assert conversation.needs_human
    assert "LLM" in conversation.handoff_reason
    # No canned reply is ever sent in place of the AI.
    assert Message.objects.filter(direction=Direction.OUT).count() == outbound_before


def test_auto_reply_off_skips_with_its_reason(alice):
    AIControlSettings.objects.filter(business=alice.business).update(auto_reply_enabled=False)
    message = _inbound(alice)
    conversation_turn_process(conversation_id=alice.conversation.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.SKIPPED
    assert message.error == "Auto-reply is off for this business."


def test_a_paused_conversation_is_not_answered(alice):
    Conversation.objects.filter(pk=alice.conversation.pk).update(ai_mode=AIMode.PAUSED)
    message = _inbound(alice)
    conversation_turn_process(conversation_id=alice.conversation.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.SKIPPED


def test_a_second_worker_never_takes_a_conversation_that_is_mid_turn(alice):
    message = _inbound(alice)
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        turn_lease_until=timezone.now() + timedelta(minutes=5)
    )
    outcome = conversation_turn_process(conversation_id=alice.conversation.pk)
    assert outcome.status == "busy"
    assert outcome.retry_in
    message.refresh_from_db()
    assert message.status == MessageStatus.RECEIVED


def test_an_expired_lease_of_a_killed_worker_is_taken_over(alice):
    message = _inbound(alice, status=MessageStatus.PROCESSING, attempts=1)
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        turn_lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert conversation_turn_process(conversation_id=alice.conversation.pk).status == "done"
    message.refresh_from_db()
    assert message.status == MessageStatus.SKIPPED
    assert message.attempts == 2
    assert Conversation.objects.get(pk=alice.conversation.pk).turn_lease_until is None


def test_a_burst_is_awaited_then_answered_as_a_whole(alice):
    AIControlSettings.objects.filter(business=alice.business).update(burst_window_seconds=5)
    first = _inbound(alice, text="Hi", age=timedelta(seconds=3))
    second = _inbound(alice, text="I need help", age=timedelta(seconds=1))
    outcome = conversation_turn_process(conversation_id=alice.conversation.pk)
    assert outcome.status == "waiting"
    assert 3 <= outcome.retry_in <= 5
    Message.objects.filter(pk__in=[first.pk, second.pk]).update(
        created_at=timezone.now() - timedelta(seconds=6)
    )
    assert conversation_turn_process(conversation_id=alice.conversation.pk).turns == 1
    assert set(Message.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {
        MessageStatus.SKIPPED
    }


def test_a_poison_message_is_given_up_after_the_attempt_cap(alice):
    message = _inbound(alice, status=MessageStatus.PROCESSING, attempts=MAX_PROCESS_ATTEMPTS)
    conversation_turn_process(conversation_id=alice.conversation.pk)
    message.refresh_from_db()
    assert message.status == MessageStatus.FAILED
    assert "Gave up" in message.error
    assert Conversation.objects.get(pk=alice.conversation.pk).needs_human


def test_resuming_the_ai_reprocesses_unanswered_messages(alice):
    message = _inbound(alice, age=timedelta(0), status=MessageStatus.FAILED, error="LLM unavailable")
    count = conversation_reprocess(conversation=alice.conversation)
    assert count == 1
    message.refresh_from_db()
    assert message.status == MessageStatus.RECEIVED
    assert message.attempts == 0


def test_the_sweeper_re_enqueues_lost_work(alice, django_capture_on_commit_callbacks):
    stuck_in = _inbound(alice, age=timedelta(minutes=5))
    fresh_in = _inbound(alice, age=timedelta(seconds=1))
    queued_out = Message.objects.create(
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.OUT,
        author=Author.STAFF,
        text="x",
        status=MessageStatus.QUEUED,
        status_changed_at=timezone.now() - timedelta(minutes=5),
    )
    lost_send = Message.objects.create(
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.OUT,
        author=Author.AI,
        text="y",
        status=MessageStatus.SENDING,
        status_changed_at=timezone.now() - timedelta(hours=1),
    )
    with django_capture_on_commit_callbacks() as callbacks:
        counts = messages_sweep()
    assert counts == {"events": 0, "conversations": 1, "queued": 1, "unknown": 1}
    assert len(callbacks) == 2
    lost_send.refresh_from_db()
    assert lost_send.status == MessageStatus.FAILED
    assert "duplicate" in lost_send.error
    for message in (stuck_in, fresh_in, queued_out):
        message.refresh_from_db()
    assert stuck_in.status == MessageStatus.RECEIVED


def test_the_sweeper_leaves_conversations_with_a_live_lease_alone(alice):
    _inbound(alice, age=timedelta(minutes=5))
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        turn_lease_until=timezone.now() + timedelta(minutes=5)
    )
    assert messages_sweep()["conversations"] == 0


def test_the_sweep_command_runs_the_sweeper(alice, capsys, django_capture_on_commit_callbacks):
    stuck = _inbound(alice, age=timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        call_command("sweep_messages")
    assert "conversations: 1" in capsys.readouterr().out
    stuck.refresh_from_db()
    assert stuck.status == MessageStatus.SKIPPED


def test_every_task_the_services_enqueue_by_name_is_registered_in_a_fresh_process():
    """A web process never imports conversations.tasks itself; ConversationsConfig.ready() must."""
    import subprocess
    import sys

    from conversations import task_queue

    names = [task_queue.PROCESS_CONVERSATION, task_queue.SEND_MESSAGE, task_queue.SWEEP]
    names.append(task_queue.APPLY_WEBHOOK_EVENT)
    script = (
        "import django, sys; django.setup(); from celery import current_app; "
        "missing = [n for n in sys.argv[1:] if n not in current_app.tasks]; print(missing); "
        "sys.exit(1 if missing else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_an_enqueue_waits_for_the_commit_and_a_rollback_enqueues_nothing(alice, monkeypatch):
    from conversations import task_queue
    from conversations.turns import conversation_process_enqueue

    sent: list[tuple] = []
    monkeypatch.setattr(task_queue, "enqueue_now", lambda name, *args, countdown=None: sent.append(args))

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():
        conversation_process_enqueue(conversation_id=alice.conversation.pk)
        raise Rollback
    assert sent == []

    with TestCase.captureOnCommitCallbacks(execute=True), transaction.atomic():
        conversation_process_enqueue(conversation_id=alice.conversation.pk)
        assert sent == []  # not before the commit
    assert sent == [(str(alice.conversation.pk),)]


def test_a_second_sweep_does_not_pile_up_copies_of_the_same_work(alice, django_capture_on_commit_callbacks):
    _inbound(alice, age=timedelta(minutes=5))
    Message.objects.create(
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.OUT,
        author=Author.STAFF,
        text="x",
        status=MessageStatus.QUEUED,
        status_changed_at=timezone.now() - timedelta(minutes=5),
    )
    with django_capture_on_commit_callbacks() as first:
        assert messages_sweep() == {"events": 0, "conversations": 1, "queued": 1, "unknown": 0}
    with django_capture_on_commit_callbacks() as second:
        assert messages_sweep() == {"events": 0, "conversations": 0, "queued": 0, "unknown": 0}
    assert len(first) == 2
    assert second == []


def test_a_broker_outage_after_commit_is_logged_and_left_to_the_sweeper(
    alice, monkeypatch, django_capture_on_commit_callbacks
):
    from conversations import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(tasks.process_conversation, "apply_async", broker_down)
    message = _inbound(alice, age=timedelta(0))
    from conversations.turns import conversation_process_enqueue

    with django_capture_on_commit_callbacks(execute=True):
        conversation_process_enqueue(conversation_id=alice.conversation.pk)  # logs, does not raise
    message.refresh_from_db()
    assert message.status == MessageStatus.RECEIVED  # stored; the sweeper will enqueue it


# -- the lease heartbeat -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_turn_slower_than_its_lease_keeps_it_by_heartbeat_and_a_dead_turns_lease_expires(
    alice, fake_llm, fake_graph, settings
):
    """The heartbeat runs on its own connection: this needs committed rows (PostgreSQL or SQLite files)."""
    import threading
    import time

    from django.db import connection

    from conversations.turn_lease import lease_claim as _lease_claim
    from tests.fakes.openai_server import Reply

    if connection.vendor != "postgresql":
        pytest.skip("the heartbeat's own connection needs committed rows of a real server (PostgreSQL)")
    settings.TURN_LEASE_SECONDS = 1
    settings.TURN_LEASE_RENEW_SECONDS = 0.2
    Conversation.objects.filter(pk=alice.conversation.pk).update(last_inbound_at=timezone.now())
    message = _inbound(alice)
    fake_llm.on("selection", Reply.slow(2.5, json_content={"stage": "general"}))
    fake_llm.on("response", {"reply": "Thanks for waiting!", "quick_replies": []})
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["turn"] = conversation_turn_process(conversation_id=alice.conversation.pk)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.8)  # past the 1 s lease: only the heartbeat keeps it
    stolen = _lease_claim(alice.conversation.pk)
    worker.join(timeout=30)

    assert stolen is None
    assert outcome["turn"].status == "done"
    message.refresh_from_db()
    assert message.status == MessageStatus.ANSWERED
    assert Conversation.objects.get(pk=alice.conversation.pk).turn_lease_until is None
    # A lease nobody renews (a killed worker's) is free again after TURN_LEASE_SECONDS.
    token = _lease_claim(alice.conversation.pk)
    assert token is not None and _lease_claim(alice.conversation.pk) is None
    time.sleep(1.1)
    assert _lease_claim(alice.conversation.pk) is not None


def test_the_sweeper_finds_a_lost_turn_within_seconds_but_leaves_a_reply_waiting_for_its_retry(alice):
    lost_turn = _inbound(alice, age=timedelta(seconds=45))  # no lease: its task is gone
    retrying = Message.objects.create(
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.OUT,
        author=Author.AI,
        text="Sent again after a backoff",
        status=MessageStatus.QUEUED,
        status_changed_at=timezone.now() - timedelta(seconds=45),
    )

    assert messages_sweep() == {"events": 0, "conversations": 1, "queued": 0, "unknown": 0}

    lost_turn.refresh_from_db()
    retrying.refresh_from_db()
    assert lost_turn.status == MessageStatus.RECEIVED and retrying.status == MessageStatus.QUEUED


def test_a_business_over_its_share_of_the_worker_is_retried_without_taking_a_thread(alice, bob, settings):
    from conversations.turn_slots import business_turn_slot

    settings.TURNS_MAX_PER_BUSINESS = 1
    message = _inbound(alice)
    bobs = _inbound(bob)

    with business_turn_slot(alice.business.pk) as taken:  # one of Alice's turns is running
        assert taken
        busy = conversation_turn_process(conversation_id=alice.conversation.pk)
        other = conversation_turn_process(conversation_id=bob.conversation.pk)

    assert (busy.status, busy.retry_in) == ("business_busy", 1.0)
    message.refresh_from_db()
    assert message.status == MessageStatus.RECEIVED  # untouched, lease not even claimed
    assert Conversation.objects.get(pk=alice.conversation.pk).turn_lease_until is None
    assert other.status == "done"  # Bob is not held up by Alice
    bobs.refresh_from_db()
    assert bobs.status != MessageStatus.RECEIVED
    assert conversation_turn_process(conversation_id=alice.conversation.pk).status == "done"
