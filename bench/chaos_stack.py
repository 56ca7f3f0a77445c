"""The fault-injection run's stack (`python -m bench.chaos`): setup, faults and recovery.

Its database (a copy of a migrated template), the children's environment,
the business it talks to; then the thread that kills the worker and restarts
Redis on schedule and restarts anything that died on its own, the sweeper,
and the wait for quiescence.
"""

# Seeded pseudo-randomness makes a run reproducible (S311); the commands run are our own (S603).
# ruff: noqa: S311, S603

from __future__ import annotations

import argparse
import hashlib
import os
import random
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench.chaos_invariants import PENDING
from bench.chaos_support import PYTHON, ROOT, Service, db_call, redis_ping, say, wait_until

APP_SECRET = "chaos-app-secret"
PHONE_NUMBER_ID = "1555000CHAOS"
DEFAULT_DATABASE_NAME = "icmp_chaos"
# Above the fake LLM's latency (--llm-delay, 1 s) with room for a busy machine.
LLM_TIMEOUT = 5.0


# --- Setup ---------------------------------------------------------------------------------


def _admin(url: str):
    import psycopg

    return psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True)


def _db_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def database_recreate(url: str, *, template: str | None = None) -> None:
    from psycopg import sql

    name = sql.Identifier(_db_name(url))
    with _admin(url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        if template:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(name, sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(name))


def migrations_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def database_fresh(url: str, env: dict[str, str]) -> None:
    """The run's database as a copy of a migrated, seeded template (rebuilt when migrations change).

    Migrating takes a minute on a busy 2-core machine; copying a template, a second.
    """
    from psycopg import sql

    template = _db_name(url) + "_template"
    fingerprint = migrations_fingerprint()
    with _admin(url) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [template]
        ).fetchone()
    if not row or row[0] != fingerprint:
        say(f"building the template database {template} (migrate + seed_templates)")
        template_url = url.rsplit("/", 1)[0] + "/" + template
        database_recreate(template_url)
        manage({**env, "DATABASE_URL": template_url}, "migrate", "--noinput")
        manage({**env, "DATABASE_URL": template_url}, "seed_templates")
        with _admin(url) as conn:
            conn.execute(
                sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                    sql.Identifier(template), sql.Literal(fingerprint)
                )
            )
    database_recreate(url, template=template)


def child_env(args: argparse.Namespace, *, redis_port: int, llm_url: str, graph_url: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "CELERY_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "icmp.settings",
            "ICMP_SKIP_DOTENV": "1",
            "DEBUG": "0",
            "SECRET_KEY": "chaos-run-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF",
            # base64 of "chaos-only-field-encryption-key!" (channel secrets at rest).
            "FIELD_ENCRYPTION_KEYS": "Y2hhb3Mtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": args.database_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CACHE_KEY_PREFIX": "icmp-chaos",
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": "chaos",
            "LLM_TIMEOUT_SECONDS": str(LLM_TIMEOUT),
            "LLM_MAX_RETRIES": str(args.llm_retries),
            "META_APP_SECRET": APP_SECRET,
            "META_GRAPH_URL": graph_url,
            "META_GRAPH_VERSION": "v25.0",
            # One business here: its share of the worker is all of it, so a crowd of its
            # customers can have every thread's turn in flight when the worker is killed.
            "TURNS_MAX_PER_BUSINESS": str(args.concurrency),
            "TURN_LEASE_SECONDS": "30",
            "SWEEPER_STUCK_AFTER_SECONDS": "30",
            "SWEEPER_QUEUED_AFTER_SECONDS": "30",
            "SWEEPER_SENDING_UNKNOWN_AFTER_SECONDS": "20",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def manage(env: dict[str, str], *command: str) -> None:
    subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def world_create(*, burst_window: int) -> None:
    """The business, its WhatsApp number, and a holding message for handoffs."""
    from businesses.services import business_create
    from channels_app.models import ChannelAccount, ChannelKind

    business, _ = business_create(name="Chaos Cafe", owner_email="chaos@example.com")
    settings = business.ai_settings
    settings.fallback_text = "A person will answer you shortly."
    settings.burst_window_seconds = burst_window
    settings.save()
    ChannelAccount.objects.create(
        business=business,
        kind=ChannelKind.WHATSAPP,
        external_id=PHONE_NUMBER_ID,
        name="Chaos WhatsApp",
        access_token="EAAG-chaos-token",
    )


# --- Faults and recovery ----------------------------------------------------------------------


def in_flight(worker_started_at: float) -> dict[str, int] | None:
    """Turns the running worker has in flight: conversations whose lease it claimed or renewed
    (a lease runs TURN_LEASE_SECONDS from then, so one that ends later than that after the
    worker started is its own, not a killed worker's lease running out). Also the customer
    messages marked processing (those of killed turns too). None when the database is down."""
    from datetime import UTC, datetime, timedelta

    from django.conf import settings
    from django.db import connections
    from django.utils import timezone

    from conversations.models import Conversation, Direction, Message, MessageStatus

    started = datetime.fromtimestamp(worker_started_at, tz=UTC)
    since = max(timezone.now(), started + timedelta(seconds=settings.TURN_LEASE_SECONDS))
    try:
        return {
            "turns": Conversation.objects.filter(turn_lease_until__gt=since).count(),
            "processing": Message.objects.filter(
                direction=Direction.IN, status=MessageStatus.PROCESSING
            ).count(),
        }
    except Exception:
        connections.close_all()
        return None


class Chaos:
    """Kills the worker, restarts Redis and stops PostgreSQL on schedule; restarts anything
    that died on its own (and counts it: nothing should)."""

    def __init__(
        self, *, worker: Service, redis: Service, web: Service, redis_port: int, postgres: Any = None
    ) -> None:
        self.worker, self.redis, self.web, self.redis_port = worker, redis, web, redis_port
        self.postgres = postgres  # a bench.chaos_pg.PrivateCluster, or None (no outage)
        self.events: list[dict[str, Any]] = []
        self.kills = 0
        self.kills_in_flight: list[dict[str, Any]] = []
        self.redis_restarts = 0
        self.postgres_outages: list[dict[str, float]] = []
        self.unexpected_restarts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _log(self, start: float, what: str, **extra: Any) -> None:
        self.events.append({"t": round(time.monotonic() - start, 1), "event": what, **extra})
        say(what + (f" {extra}" if extra else ""))

    def kill_worker(self, start: float, rng: random.Random, *, crowd: int = 0, wait: float = 20.0) -> None:
        """SIGKILL the worker's process group; with `crowd`, first wait (up to `wait` s) until
        that many turns are in flight."""
        deadline = time.monotonic() + wait
        flight = in_flight(self.worker.started_at)
        while crowd and time.monotonic() < deadline and (flight is None or flight["turns"] < crowd):
            time.sleep(0.2)
            flight = in_flight(self.worker.started_at)
        with self.lock:
            flight = in_flight(self.worker.started_at) or flight
            self.worker.kill()
            self.kills += 1
            self.kills_in_flight.append({"t": round(time.monotonic() - start, 1), **(flight or {})})
            down = round(rng.uniform(0.5, 3.0), 1)
            self._log(start, "worker SIGKILLed (process group)", down_s=down, in_flight=flight)
            time.sleep(down)
            self.worker.start()

    def stop_postgres(self, start: float, outage: float) -> None:
        """Stop PostgreSQL as a crash would (immediate), keep it down `outage` s, start it."""
        with self.lock:
            stopped = time.monotonic()  # its connections are cut while pg_ctl waits for it
            self.postgres.stop("immediate")
            self._log(start, "postgres stopped (immediate)")
            time.sleep(outage)
            self.postgres.start()
            back = time.monotonic()
            self.postgres_outages.append(
                {
                    "from_s": round(stopped - start, 1),
                    "to_s": round(back - start, 1),
                    "down_s": round(back - stopped, 1),
                }
            )
            self._log(start, "postgres started again", down_s=round(back - stopped, 1))

    def restart_redis(self, start: float) -> None:
        with self.lock:
            self.redis.kill()
            self._log(start, "redis killed")
            time.sleep(2.0)
            self.redis.start()
            wait_until(lambda: redis_ping(self.redis_port), timeout=20, what="redis to come back")
            self.redis_restarts += 1
            self._log(start, "redis restarted (empty: no persistence)")

    def supervise(self, start: float) -> None:
        with self.lock:
            for service in (self.worker, self.web):
                if not service.alive:
                    self.unexpected_restarts[service.name] += 1
                    self._log(start, f"{service.name} had exited on its own; restarting it")
                    service.start()

    def run(self, start: float, faults: Faults, stop: threading.Event, seed: int) -> None:
        rng = random.Random(seed * 101)
        plan = [(t, "kill") for t in faults.kills_at] + [(faults.redis_at, "redis")]
        if faults.crowd_kill_at is not None:
            plan.append((faults.crowd_kill_at, "crowd kill"))
        if faults.postgres_at is not None and self.postgres is not None:
            plan.append((faults.postgres_at, "postgres"))
        for at, what in sorted(plan):
            while not stop.is_set() and time.monotonic() < start + at:
                stop.wait(min(1.0, start + at - time.monotonic()))
                self.supervise(start)
            if stop.is_set():
                return
            if what == "kill":
                self.kill_worker(start, rng)
            elif what == "crowd kill":
                self.kill_worker(start, rng, crowd=faults.crowd)
            elif what == "postgres":
                self.stop_postgres(start, faults.postgres_outage)
            else:
                self.restart_redis(start)
        while not stop.wait(1.0):
            self.supervise(start)


@dataclass(frozen=True)
class Faults:
    """When the run breaks what (seconds from the start)."""

    kills_at: list[float]
    redis_at: float
    # One more kill, once `crowd` turns are in flight (a wave of customers is posted before it).
    crowd_kill_at: float | None = None
    crowd: int = 0
    postgres_at: float | None = None
    postgres_outage: float = 10.0


class Sweeper(threading.Thread):
    """Runs conversations.sweeper.messages_sweep every few seconds (Celery beat's job in production)."""

    def __init__(self, interval: float = 15.0) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.interval = interval
        self.stop = threading.Event()
        self.runs = 0
        self.errors: Counter[str] = Counter()
        self.requeued: Counter[str] = Counter()

    def run(self) -> None:
        from django.db import close_old_connections, connections

        from conversations.sweeper import messages_sweep

        while not self.stop.wait(self.interval):
            try:
                counts = messages_sweep()
                self.runs += 1
                self.requeued.update(counts)
            except Exception as exc:
                self.errors[type(exc).__name__] += 1
                close_old_connections()
        connections.close_all()


def pending_count() -> int:
    from conversations.models import Message

    return db_call(lambda: Message.objects.filter(status__in=PENDING).count())


def drain(*, timeout: float, chaos: Chaos, start: float) -> tuple[bool, float]:
    """Wait until nothing is pending twice in a row (3 s apart); (quiescent, seconds waited)."""
    began = time.monotonic()
    zero_streak = 0
    last_report = 0.0
    while time.monotonic() - began < timeout:
        chaos.supervise(start)
        left = pending_count()
        zero_streak = zero_streak + 1 if left == 0 else 0
        if zero_streak >= 2:
            return True, time.monotonic() - began
        if time.monotonic() - last_report > 15:
            say(f"draining: {left} messages pending")
            last_report = time.monotonic()
        time.sleep(3.0)
    return False, time.monotonic() - began
