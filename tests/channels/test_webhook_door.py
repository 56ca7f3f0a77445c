"""The thin webhook door: it stores the raw event and answers; a task applies it.

- The request runs one INSERT and hands the event on after commit, through a
  short middleware chain (no sessions, CSRF, auth, messages).
- The apply task goes straight on to the first conversation's turn: no second queue hop.
- A lost task (the worker died before applying) and a worker killed mid-apply
  leave the event `received`; the sweeper applies it within seconds.
- A duplicate apply of an event another worker holds is a no-op (SKIP LOCKED).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.models import WebhookEvent, WebhookEventStatus
from conversations import task_queue
from conversations.inbound import batches
from conversations.inbound.webhooks import webhook_event_apply
from conversations.models import Message, MessageStatus
from conversations.sweeper import messages_sweep
from tests.channels import fixture_bytes
from tests.channels.webhook_helpers import PNID_2, last_event, make_account, post_fixture, sign, url

pytestmark = pytest.mark.usefixtures("meta_app")


def raw_post(channel: str, name: str, client: Client | None = None):
    """POST as Meta does, without running what the door hands on after commit."""
    body = fixture_bytes(channel, name)
    return (client or Client()).post(
        url(channel), data=body, content_type="application/json", headers={"X-Hub-Signature-256": sign(body)}
    )


def age(event: WebhookEvent, seconds: float) -> None:
    WebhookEvent.objects.filter(pk=event.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


@pytest.mark.django_db
def test_the_request_stores_the_raw_body_with_one_insert_and_applies_nothing(accounts):
    with TestCase.captureOnCommitCallbacks() as handed_on, CaptureQueriesContext(connection) as queries:
        response = raw_post("whatsapp", "text")

    assert response.status_code == 200
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert statements == ["INSERT"], [q["sql"][:120] for q in queries.captured_queries]
    event = last_event()
    assert (event.status, event.attempts) == (WebhookEventStatus.RECEIVED, 0)
    assert response.json() == {"status": "ok", "event": str(event.pk)}
    assert not Message.objects.filter(channel_account=accounts["whatsapp"]).exists()
    assert len(handed_on) == 1  # the apply task, once the INSERT commits


@pytest.mark.django_db
def test_the_door_skips_the_admins_middleware(accounts):
    response = raw_post("whatsapp", "text")
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]  # the request id still runs first
    assert "X-Frame-Options" not in response.headers  # XFrameOptionsMiddleware never saw it
    assert not hasattr(response.wsgi_request, "session")  # nor SessionMiddleware
    assert not hasattr(response.wsgi_request, "user")  # nor AuthenticationMiddleware

    page = Client().get("/ping")
    assert page.headers["X-Frame-Options"] == "DENY"  # everything else keeps the full chain


@pytest.mark.django_db
def test_a_webhook_path_that_matches_no_route_gets_the_full_chains_answer(accounts):
    response = Client().post("/webhooks/telegram/", data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_the_apply_task_goes_straight_on_to_the_turn(accounts, monkeypatch):
    names: list[str] = []
    real = task_queue.enqueue_now

    def recorded(name, *args, countdown=None):
        names.append(name)
        return real(name, *args, countdown=countdown)

    monkeypatch.setattr(task_queue, "enqueue_now", recorded)
    post_fixture("whatsapp", "text")

    assert names == [task_queue.APPLY_WEBHOOK_EVENT]  # no process_conversation hop
    message = Message.objects.get(channel_account=accounts["whatsapp"])
    assert message.status == MessageStatus.SKIPPED  # the turn ran (no LLM configured here)
    assert message.attempts == 1


@pytest.mark.django_db
def test_a_batched_body_runs_one_turn_in_the_task_and_enqueues_the_others(alice, accounts, monkeypatch):
    make_account(alice.business, "whatsapp", PNID_2)
    names: list[str] = []
    real = task_queue.enqueue_now

    def recorded(name, *args, countdown=None):
        names.append(name)
        return real(name, *args, countdown=countdown)

    monkeypatch.setattr(task_queue, "enqueue_now", recorded)
    post_fixture("whatsapp", "batched")

    inbound = Message.objects.filter(external_id__startswith="wamid.BATCH")
    assert len(set(inbound.values_list("conversation_id", flat=True))) == 3
    assert names == [task_queue.APPLY_WEBHOOK_EVENT] + [task_queue.PROCESS_CONVERSATION] * 2
    assert not inbound.filter(status=MessageStatus.RECEIVED).exists()  # both turns ran


@pytest.mark.django_db
def test_a_lost_apply_task_is_found_by_the_sweeper(accounts, settings):
    with TestCase.captureOnCommitCallbacks():  # the worker died before taking the task
        raw_post("whatsapp", "text")
    event = last_event()

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert messages_sweep()["events"] == 0  # too young: its task may still be queued
    age(event, settings.SWEEPER_EVENT_AFTER_SECONDS + 1)
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert messages_sweep()["events"] == 1
        assert messages_sweep()["events"] == 0  # stamped: not re-enqueued on every sweep

    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookEventStatus.PROCESSED, 1)
    message = Message.objects.get(channel_account=accounts["whatsapp"])
    assert message.status == MessageStatus.SKIPPED  # stored, and its turn ran


class Killed(BaseException):
    """What a SIGKILL looks like to the database: the transaction never commits."""


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_apply_leaves_the_event_for_the_sweeper(accounts, monkeypatch, settings):
    # Stored by the door, its task taken by a worker that is about to die.
    event = WebhookEvent.objects.create(channel="whatsapp", body=fixture_bytes("whatsapp", "text").decode())
    real = batches.inbound_item_apply

    def killed_after_writing(*, account, item):
        real(account=account, item=item)  # the message row is written…
        raise Killed  # …and the process dies before the commit

    monkeypatch.setattr(batches, "inbound_item_apply", killed_after_writing)
    with pytest.raises(Killed):
        webhook_event_apply(event_id=event.pk)
    monkeypatch.setattr(batches, "inbound_item_apply", real)

    event.refresh_from_db()
    assert (event.status, event.attempts) == (WebhookEventStatus.RECEIVED, 0)
    assert not Message.objects.filter(channel_account=accounts["whatsapp"]).exists()  # rolled back

    age(event, settings.SWEEPER_EVENT_AFTER_SECONDS + 1)
    messages_sweep()  # autocommit: the re-enqueued task runs at once (no broker here)
    event.refresh_from_db()
    assert event.status == WebhookEventStatus.PROCESSED
    assert Message.objects.filter(channel_account=accounts["whatsapp"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_apply_skips_an_event_another_worker_holds(accounts):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (SQLite locks the whole database)")
    event = WebhookEvent.objects.create(channel="whatsapp", body=fixture_bytes("whatsapp", "text").decode())
    held, release = threading.Event(), threading.Event()

    def other_worker() -> None:
        try:
            with transaction.atomic():
                WebhookEvent.objects.select_for_update().get(pk=event.pk)
                held.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(timeout=10)
        assert webhook_event_apply(event_id=event.pk).event is None  # skipped, not blocked
    finally:
        release.set()
        thread.join(timeout=10)
    applied = webhook_event_apply(event_id=event.pk)
    assert applied.event is not None and applied.event.status == WebhookEventStatus.PROCESSED
    webhook_event_apply(event_id=event.pk)
    event.refresh_from_db()
    assert event.attempts == 1  # and never twice


@pytest.mark.django_db
def test_a_handed_back_apply_task_of_an_applied_event_still_starts_the_waiting_turn(accounts, enqueued):
    """The worker died after the apply committed and before the turn: the broker hands the task
    back, the event is not applied twice, and its waiting conversation gets its turn."""
    from conversations.tasks import apply_webhook_event

    with TestCase.captureOnCommitCallbacks():  # the first worker's task: applied, then it died
        raw_post("whatsapp", "text")
    event = last_event()
    webhook_event_apply(event_id=event.pk)
    message = Message.objects.get(channel_account=accounts["whatsapp"])
    assert message.status == MessageStatus.RECEIVED and enqueued == []

    assert apply_webhook_event(str(event.pk)) == WebhookEventStatus.PROCESSED  # the handed-back copy

    assert enqueued == [message.conversation_id]
    event.refresh_from_db()
    assert event.attempts == 1  # applied once
    assert Message.objects.filter(channel_account=accounts["whatsapp"]).count() == 1

    message.status = MessageStatus.ANSWERED
    message.save(update_fields=["status"])
    apply_webhook_event(str(event.pk))
    assert enqueued == [message.conversation_id]  # nothing waits any more: no turn
