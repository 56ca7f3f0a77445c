"""A killed worker's tasks come back from the broker within its visibility timeout, and
nothing the code schedules waits that long: a countdown past the timeout would be handed
back while its worker still holds it, and run again every timeout until it is due."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from businesses.models import AIControlSettings
from businesses.services import MAX_BURST_WINDOW_SECONDS
from conversations import task_queue, tasks
from conversations.models import Author, Direction, Message, MessageStatus
from conversations.outbound import BACKOFF_MAX_SECONDS, MAX_SEND_ATTEMPTS, backoff_seconds
from conversations.turns import BUSINESS_BUSY_RETRY_SECONDS

README = Path(__file__).resolve().parents[2] / "README.md"


class _Task:
    """Stands in for a Celery task: records what would be published."""

    name = "conversations.test"

    def __init__(self) -> None:
        self.published: list[float | None] = []

    def apply_async(self, *, args, countdown):
        self.published.append(countdown)


def test_every_countdown_the_code_can_schedule_stays_below_the_visibility_timeout():
    timeout = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    cap = settings.BROKER_MAX_COUNTDOWN_SECONDS

    assert timeout == settings.BROKER_VISIBILITY_TIMEOUT_SECONDS
    # A task has at least a minute to run after its countdown before a copy of it is made.
    assert timeout - cap >= 60
    # Send retries: the longest backoff, even when Meta asks for an hour, is within the cap.
    longest = max(backoff_seconds(n, retry_after=3600) for n in range(1, MAX_SEND_ATTEMPTS + 1))
    assert longest == BACKOFF_MAX_SECONDS <= cap
    # A scheduled send retry is not taken for lost work by the sweeper.
    assert settings.SWEEPER_QUEUED_AFTER_SECONDS > BACKOFF_MAX_SECONDS
    assert cap > BUSINESS_BUSY_RETRY_SECONDS
    # A burst window may be longer than the cap: it is waited for in hops (below).
    assert cap < MAX_BURST_WINDOW_SECONDS


def test_a_killed_workers_tasks_are_looked_for_every_few_seconds():
    from kombu.transport.redis import Channel

    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    # kombu >= 5.7 reads the restore cadence; an older one would drop it silently (every 100 s).
    assert set(options) <= set(Channel.from_transport_options)
    assert options["unacked_restore_throttle"] == 1
    assert options["unacked_restore_interval"] * 10 <= options["visibility_timeout"]
    assert options["unacked_mutex_expire"] <= options["visibility_timeout"]
    # Sweeps that piled up while no worker ran expire rather than run one after another.
    sweep = settings.CELERY_BEAT_SCHEDULE["sweep-stuck-messages"]
    assert sweep["options"]["expires"] == sweep["schedule"] == settings.SWEEPER_INTERVAL_SECONDS


def test_a_countdown_past_the_cap_is_published_at_the_cap(monkeypatch):
    monkeypatch.setattr(task_queue, "embedded_runner", lambda: None)
    task = _Task()
    monkeypatch.setattr(task_queue, "_task", lambda name: task)

    task_queue.enqueue_now(task.name, "x", countdown=settings.BROKER_MAX_COUNTDOWN_SECONDS * 5)
    task_queue.enqueue_now(task.name, "x", countdown=2.5)
    task_queue.enqueue_now(task.name, "x")

    assert task.published == [settings.BROKER_MAX_COUNTDOWN_SECONDS, 2.5, None]


def test_a_burst_window_longer_than_the_cap_is_waited_for_in_hops(alice, monkeypatch):
    monkeypatch.setattr(task_queue, "runs_in_request", lambda: False)  # as on a worker with a broker
    monkeypatch.setattr(task_queue, "embedded_runner", lambda: None)
    published: list[float] = []
    monkeypatch.setattr(
        tasks.process_conversation,
        "apply_async",
        lambda *, args, countdown: published.append(countdown),
    )
    AIControlSettings.objects.filter(business=alice.business).update(
        burst_window_seconds=MAX_BURST_WINDOW_SECONDS
    )
    message = Message.objects.create(
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text="Wait for the rest of what I write",
        status=MessageStatus.RECEIVED,
    )

    assert tasks.process_conversation(str(alice.conversation.pk)) == "waiting"
    # Woken after the cap, it sees the window still open and waits what is left of it.
    Message.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(seconds=MAX_BURST_WINDOW_SECONDS - 20)
    )
    assert tasks.process_conversation(str(alice.conversation.pk)) == "waiting"

    assert published[0] == settings.BROKER_MAX_COUNTDOWN_SECONDS
    assert 18 <= published[1] <= 20
    message.refresh_from_db()
    assert message.status == MessageStatus.RECEIVED


@pytest.mark.parametrize(
    ("setting", "pattern"),
    [
        ("BROKER_VISIBILITY_TIMEOUT_SECONDS", r"`BROKER_VISIBILITY_TIMEOUT_SECONDS`, (\d+) s"),
        ("BROKER_MAX_COUNTDOWN_SECONDS", r"`BROKER_MAX_COUNTDOWN_SECONDS`, (\d+) s"),
        ("TURN_LEASE_SECONDS", r"`TURN_LEASE_SECONDS`, (\d+) s"),
        ("SWEEPER_STUCK_AFTER_SECONDS", r"`SWEEPER_STUCK_AFTER_SECONDS`, (\d+) s"),
        ("SWEEPER_INTERVAL_SECONDS", r"`SWEEPER_INTERVAL_SECONDS`, (\d+) s"),
    ],
)
def test_the_readme_states_the_recovery_settings_as_configured(setting, pattern):
    found = re.search(pattern, README.read_text())
    assert found, f"README does not document {setting}"
    assert int(found.group(1)) == int(getattr(settings, setting))


def test_the_readme_states_the_restore_cadence_as_configured():
    interval = settings.CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"]
    assert f"every {interval} s" in README.read_text()
