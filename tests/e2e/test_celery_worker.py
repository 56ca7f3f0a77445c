"""The task wiring with a real Celery worker process on real Redis and PostgreSQL.

Eager mode only emulates a worker, so these tests start `celery -A icmp worker`
as a separate process sharing the test database (committed rows: a
transactional test), and SIGKILL it mid-turn to prove the sweeper recovers the
message. They need PostgreSQL (a SQLite test database is in memory) and
REDIS_URL; CI runs them against both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from conversations.models import Direction, Message, MessageStatus
from tests.conftest import make_tenant
from tests.e2e import whatsapp
from tests.fakes.openai_server import Reply

ROOT = Path(__file__).resolve().parents[2]
APP_SECRET = "worker-app-secret"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not settings.REDIS_URL, reason="needs REDIS_URL (CI sets it)"),
]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("a worker process cannot see an in-memory SQLite test database")


@pytest.fixture
def broker_mode():
    """Tasks go through Redis to the worker, as in production."""
    from icmp.celery import app

    app.conf.task_always_eager = False
    with app.connection_for_write() as conn:  # start from an empty queue
        conn.default_channel.client.delete("celery")
    yield app
    app.conf.task_always_eager = True


def _database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> Worker:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "icmp",
                "worker",  # the production pool (threads) and concurrency come from the settings
                "--concurrency=4",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=WARNING",
            ],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@pytest.fixture
def worker_env(postgres_only, broker_mode, fake_llm, fake_graph):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "icmp.settings",
        "ICMP_SKIP_DOTENV": "1",
        "DEBUG": "0",
        "SECRET_KEY": "worker-test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "localhost",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": "icmp-worker-test",
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": "test",
        "LLM_MAX_RETRIES": "0",
        "LLM_TIMEOUT_SECONDS": "60",
        "META_GRAPH_URL": fake_graph.url,
        "META_GRAPH_VERSION": "v25.0",
        "TURN_LEASE_SECONDS": "3",
    }
    workers: list[Worker] = []

    def spawn(**extra: str) -> Worker:
        worker = Worker({**env, **extra}).start()
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        worker.kill()


def _post_text(tenant, wamid: str, text: str) -> None:
    payload = whatsapp.text_message(tenant.channel.external_id, wa_id="5511987654321", wamid=wamid, text=text)
    assert whatsapp.post_signed(payload, APP_SECRET).status_code == 200


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _text_sends(fake_graph) -> list[str]:
    return [r.body["text"]["body"] for r in fake_graph.requests if (r.body or {}).get("type") == "text"]


@pytest.fixture
def tenant(settings):
    settings.META_APP_SECRET = APP_SECRET
    tenant = make_tenant("Worker Cafe", "cafe@example.com", "3088000001")
    tenant.business.ai_settings.burst_window_seconds = 0
    tenant.business.ai_settings.save()
    return tenant


def test_a_real_worker_answers_an_inbound_message_end_to_end(tenant, worker_env, fake_llm, fake_graph):
    fake_llm.on("response", {"reply": "Hello from the worker!", "quick_replies": []})
    worker_env()
    _post_text(tenant, "wamid.worker.1", "Hi")

    _wait_for(lambda: _text_sends(fake_graph), what="the reply at the fake Graph API")
    assert _text_sends(fake_graph) == ["Hello from the worker!"]
    inbound = Message.objects.get(external_id="wamid.worker.1")
    assert inbound.status == MessageStatus.ANSWERED
    reply = _wait_for(
        lambda: Message.objects.filter(
            conversation=inbound.conversation, direction=Direction.OUT, status=MessageStatus.SENT
        ).first(),
        what="the reply marked sent",
    )
    assert reply.text == "Hello from the worker!"


def test_a_worker_killed_mid_turn_loses_nothing_and_answers_once(
    tenant, worker_env, fake_llm, fake_graph, settings
):
    from conversations.sweeper import messages_sweep

    # The first LLM request hangs long enough for us to kill the worker mid-turn.
    fake_llm.on("selection", Reply.slow(30, json_content={"stage": "general"}))
    fake_llm.on("response", {"reply": "Sorry, I'm back!", "quick_replies": []})
    first = worker_env()
    _post_text(tenant, "wamid.worker.2", "Are you there?")

    _wait_for(lambda: fake_llm.requests, what="the turn to reach the LLM")
    inbound = Message.objects.get(external_id="wamid.worker.2")
    assert inbound.status == MessageStatus.PROCESSING
    first.kill()

    worker_env()
    time.sleep(3.5)  # the dead worker's lease (TURN_LEASE_SECONDS=3) expires
    settings.SWEEPER_STUCK_AFTER_SECONDS = 0
    assert messages_sweep()["conversations"] == 1

    _wait_for(lambda: _text_sends(fake_graph), what="the reply after recovery")
    time.sleep(1.0)  # a duplicate send would show up here
    assert _text_sends(fake_graph) == ["Sorry, I'm back!"]
    inbound.refresh_from_db()
    assert inbound.status == MessageStatus.ANSWERED
    assert inbound.attempts == 2
    assert Message.objects.filter(external_id="wamid.worker.2").count() == 1


def test_a_killed_workers_task_is_handed_back_by_the_broker_without_the_sweeper(
    tenant, worker_env, fake_llm, fake_graph
):
    # A short visibility timeout, so the test need not wait the production 120 s; the
    # restore cadence (every 5 s) is the production one. No sweeper runs in this test.
    fast = {"BROKER_VISIBILITY_TIMEOUT_SECONDS": "4"}
    fake_llm.on("selection", Reply.slow(30, json_content={"stage": "general"}))
    fake_llm.on("response", {"reply": "Handed back!", "quick_replies": []})
    first = worker_env(**fast)
    _post_text(tenant, "wamid.worker.3", "Still there?")

    _wait_for(lambda: fake_llm.requests, what="the turn to reach the LLM")
    first.kill()
    worker_env(**fast)

    # Back after the timeout, it waits out the dead turn's lease (3 s) and answers.
    _wait_for(lambda: _text_sends(fake_graph), timeout=45, what="the reply of the handed-back task")
    time.sleep(1.0)  # a duplicate send would show up here
    assert _text_sends(fake_graph) == ["Handed back!"]
    inbound = Message.objects.get(external_id="wamid.worker.3")
    assert inbound.status == MessageStatus.ANSWERED
