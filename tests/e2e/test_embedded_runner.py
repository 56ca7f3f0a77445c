"""`make run`'s embedded runner: tasks run after the request on the worker's code path, and the
sweeper runs on a timer. The runner's threads use their own database connections, so these tests
need committed rows (transaction=True) on a real server (PostgreSQL, as CI has)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from conversations.embedded import embedded_runner, embedded_runner_stop
from conversations.models import Author, Direction, Message, MessageStatus
from tests.e2e import whatsapp
from tests.fakes.openai_server import Reply

pytestmark = pytest.mark.django_db(transaction=True)

APP_SECRET = "embedded-app-secret"


@pytest.fixture
def embedded(settings, fake_llm, fake_graph):
    if connection.vendor != "postgresql":
        pytest.skip("the runner's threads need committed rows of a real server (PostgreSQL)")
    settings.EMBEDDED_RUNNER = True
    settings.REDIS_URL = ""  # embedded mode: no broker
    settings.META_APP_SECRET = APP_SECRET
    yield
    embedded_runner_stop()


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _text_sends(fake_graph) -> list[str]:
    return [r.body["text"]["body"] for r in fake_graph.requests if (r.body or {}).get("type") == "text"]


def test_the_webhook_answers_before_the_llm_and_the_runner_replies_after(
    alice, embedded, fake_llm, fake_graph
):
    alice.business.ai_settings.burst_window_seconds = 0
    alice.business.ai_settings.save()
    fake_llm.on("selection", Reply.slow(1.0, json_content={"stage": "general"}))
    fake_llm.on("response", {"reply": "Hello from the runner!", "quick_replies": []})
    payload = whatsapp.text_message(
        alice.channel.external_id, wa_id="5511900000001", wamid="wamid.emb.1", text="Hi"
    )

    started = time.monotonic()
    assert whatsapp.post_signed(payload, APP_SECRET).status_code == 200
    answered_in = time.monotonic() - started

    assert answered_in < 0.9  # the request did not wait for the 1 s LLM round trip
    assert _text_sends(fake_graph) == []
    _wait_for(lambda: _text_sends(fake_graph), timeout=15, what="the reply")
    assert _text_sends(fake_graph) == ["Hello from the runner!"]
    assert Message.objects.get(external_id="wamid.emb.1").status == MessageStatus.ANSWERED


def test_the_sweeper_runs_on_a_timer_without_cron(alice, embedded, settings, fake_llm, fake_graph):
    settings.SWEEPER_INTERVAL_SECONDS = 0.2
    settings.SWEEPER_STUCK_AFTER_SECONDS = 0
    fake_llm.on("response", {"reply": "Found you!", "quick_replies": []})
    from django.utils import timezone

    type(alice.conversation).objects.filter(pk=alice.conversation.pk).update(last_inbound_at=timezone.now())
    lost = Message.objects.create(  # stored, but its task was lost (a restart, say)
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text="Anyone there?",
        status=MessageStatus.RECEIVED,
    )

    embedded_runner()  # the web process starts it with its first request
    _wait_for(lambda: _text_sends(fake_graph), timeout=15, what="the swept turn's reply")

    lost.refresh_from_db()
    assert lost.status == MessageStatus.ANSWERED
    assert _text_sends(fake_graph) == ["Found you!"]


def test_waiting_on_the_api_channel_stops_when_the_message_ends_without_a_reply(alice, embedded, settings):
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""  # no LLM: the turn skips and flags staff

    started = time.monotonic()
    response = alice.client().post(
        "/api/v1/channels/api/messages/?wait=10", {"contact": "c-1", "text": "hello"}, format="json"
    )

    assert response.status_code == 202
    assert response.json()["status"] == MessageStatus.SKIPPED
    assert time.monotonic() - started < 5  # not the whole 10 s
