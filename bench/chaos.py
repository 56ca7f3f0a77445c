"""Fault injection: nothing lost, nothing twice, while the machinery breaks underneath.

    python -m bench.chaos [--messages 2000] [--seed 1] [--rate 5]

Starts its own isolated stack: a private Redis on a free port (restarted once
mid-run), a dedicated PostgreSQL database (dropped, created and migrated),
gunicorn serving the app, a prefork Celery worker (SIGKILLed with its process
group at random moments and restarted), a fake LLM failing 10 % of requests
(500, 429, or slower than LLM_TIMEOUT_SECONDS) and a fake Graph API failing
10 % of sends (HTTP 500, Graph error 130429) that counts sends per message id.
It posts signed WhatsApp webhooks (20 % delivered twice, half of those
concurrently) at a steady rate, runs the sweeper every few seconds (what Celery
beat does in production), waits until nothing is pending, then checks the
database against the invariants in bench/chaos_support.evaluate, prints a
table, writes bench/results/chaos.json, and exits 1 when one is violated.
"""

# Seeded pseudo-randomness makes a run reproducible (S311); the commands run are our own (S603).
# ruff: noqa: S311, S603

from __future__ import annotations

import argparse
import contextlib
import hashlib
import heapq
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.chaos_support import (
    PENDING,
    PYTHON,
    ROOT,
    Delivery,
    Facts,
    Service,
    chaos_graph,
    chaos_llm,
    evaluate,
    free_port,
    http_ok,
    kill_schedule,
    plan_deliveries,
    redis_ping,
    sign,
    wait_until,
    whatsapp_body,
)

RESULTS = ROOT / "bench" / "results"
APP_SECRET = "chaos-app-secret"
PHONE_NUMBER_ID = "1555000CHAOS"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/icmp_chaos"
LLM_TIMEOUT = 3.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="distinct inbound messages (default 2000)")
    parser.add_argument("--contacts", type=int, default=200, help="customers they come from (default 200)")
    parser.add_argument("--rate", type=float, default=5.0, help="new messages per second (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share delivered twice (default 0.2)")
    parser.add_argument("--llm-failures", type=float, default=0.1, help="share of LLM requests failing")
    parser.add_argument("--graph-failures", type=float, default=0.1, help="share of Graph sends failing")
    parser.add_argument("--llm-retries", type=int, default=1, help="LLM_MAX_RETRIES for the run (default 1)")
    parser.add_argument(
        "--kills", type=int, default=None, help="worker SIGKILLs (default: one per ~60 s, >= 3)"
    )
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker processes (default 4)")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument(
        "--burst-window", type=int, default=0, help="the business's burst_window_seconds (default 0)"
    )
    parser.add_argument(
        "--sweep-every", type=float, default=15.0, help="seconds between sweeper runs (default 15)"
    )
    parser.add_argument("--worker-loglevel", default="WARNING")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for quiescence")
    parser.add_argument("--database-url", default=os.environ.get("CHAOS_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--output", type=Path, default=RESULTS / "chaos.json")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


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
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": args.database_url,
            "DATABASE_POOL_MAX_SIZE": "3",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CACHE_KEY_PREFIX": "icmp-chaos",
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": "chaos",
            "LLM_TIMEOUT_SECONDS": str(LLM_TIMEOUT),
            "LLM_MAX_RETRIES": str(args.llm_retries),
            "META_APP_SECRET": APP_SECRET,
            "META_GRAPH_URL": graph_url,
            "META_GRAPH_VERSION": "v25.0",
            # Longer than a turn's worst case (3 calls x (1 + retries) x the 3 s timeout,
            # plus backoff), as the setting requires; short so a killed turn recovers fast.
            "TURN_LEASE_SECONDS": "30",
            "SWEEPER_STUCK_AFTER_SECONDS": "30",
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


# --- Load ------------------------------------------------------------------------------------


class LoadGen:
    """Posts the plan on schedule; like Meta, retries a delivery until it gets a 200."""

    def __init__(
        self, url: str, plan: list[Delivery], *, threads: int = 24, give_up_after: float = 120.0
    ) -> None:
        self.url, self.plan, self.give_up_after = url, plan, give_up_after
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="post")
        self.local = threading.local()
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.acked: set[str] = set()
        self.posts = 0
        self.retries = 0
        self.bodies: dict[int, bytes] = {}

    def _session(self):
        import requests

        if getattr(self.local, "session", None) is None:
            self.local.session = requests.Session()
        return self.local.session

    def _post(self, delivery: Delivery, barrier: threading.Barrier | None) -> None:
        import requests

        body = self.bodies[delivery.seq]
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
        if barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=2)
        deadline, pause = time.monotonic() + self.give_up_after, 0.5
        while True:
            started = time.monotonic()
            try:
                status = str(
                    self._session().post(self.url, data=body, headers=headers, timeout=35).status_code
                )
            except requests.RequestException as exc:
                status = type(exc).__name__
                self.local.session = None
            with self.lock:
                self.posts += 1
                self.statuses[status] += 1
                if status == "200":
                    self.latencies.append(time.monotonic() - started)
                    self.acked.add(delivery.wamid)
            if status == "200" or time.monotonic() > deadline:
                return
            with self.lock:
                self.retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 8.0)

    def run(self, start: float, stop: threading.Event) -> None:
        timestamp = int(time.time())
        events: list[tuple[float, int, int, Delivery]] = []
        for delivery in self.plan:
            self.bodies[delivery.seq] = whatsapp_body(
                phone_number_id=PHONE_NUMBER_ID, delivery=delivery, timestamp=timestamp + int(delivery.at)
            )
            events.append((delivery.at, delivery.seq, 0, delivery))
            if delivery.duplicate == "later":
                events.append((delivery.at + delivery.again_after, delivery.seq, 1, delivery))
        heapq.heapify(events)
        futures = []
        while events and not stop.is_set():
            at, _, again, delivery = heapq.heappop(events)
            wait = start + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not again and delivery.duplicate == "concurrent":
                barrier = threading.Barrier(2)
                futures += [self.pool.submit(self._post, delivery, barrier) for _ in range(2)]
            else:
                futures.append(self.pool.submit(self._post, delivery, None))
        for future in futures:
            future.result()
        self.pool.shutdown()

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return (
                round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)
                if latencies
                else None
            )

        return {
            "posts": self.posts,
            "retried_posts": self.retries,
            "responses": dict(sorted(self.statuses.items())),
            "ack_ms_p50": pct(0.5),
            "ack_ms_p99": pct(0.99),
            "ack_ms_mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        }


# --- Faults and recovery ----------------------------------------------------------------------


class Chaos:
    """Kills the worker and restarts Redis on schedule; restarts anything that died on its own."""

    def __init__(self, *, worker: Service, redis: Service, web: Service, redis_port: int) -> None:
        self.worker, self.redis, self.web, self.redis_port = worker, redis, web, redis_port
        self.events: list[dict[str, Any]] = []
        self.kills = 0
        self.redis_restarts = 0
        self.unexpected_restarts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _log(self, start: float, what: str, **extra: Any) -> None:
        self.events.append({"t": round(time.monotonic() - start, 1), "event": what, **extra})
        say(what + (f" {extra}" if extra else ""))

    def kill_worker(self, start: float, rng: random.Random) -> None:
        with self.lock:
            self.worker.kill()
            self.kills += 1
            down = round(rng.uniform(0.5, 3.0), 1)
            self._log(start, "worker SIGKILLed (process group)", down_s=down)
            time.sleep(down)
            self.worker.start()

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

    def run(
        self, start: float, kills_at: list[float], redis_at: float, stop: threading.Event, seed: int
    ) -> None:
        rng = random.Random(seed * 101)
        plan = sorted([(t, "kill") for t in kills_at] + [(redis_at, "redis")])
        for at, what in plan:
            while not stop.is_set() and time.monotonic() < start + at:
                stop.wait(min(1.0, start + at - time.monotonic()))
                self.supervise(start)
            if stop.is_set():
                return
            if what == "kill":
                self.kill_worker(start, rng)
            else:
                self.restart_redis(start)
        while not stop.wait(1.0):
            self.supervise(start)


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

    return Message.objects.filter(status__in=PENDING).count()


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


# --- Facts and report ----------------------------------------------------------------------------


def facts_gather(plan: list[Delivery], loadgen: LoadGen, graph: Any) -> Facts:
    from conversations.models import Author, Direction, Message

    inbound = list(
        Message.objects.filter(direction=Direction.IN, author=Author.CUSTOMER).values_list(
            "external_id", "status", "error"
        )
    )
    outbound = [
        (str(pk), author, status, error, text)
        for pk, author, status, error, text in Message.objects.filter(direction=Direction.OUT).values_list(
            "pk", "author", "status", "error", "text"
        )
    ]
    return Facts(
        wamids_sent={d.wamid for d in plan},
        wamids_acked=set(loadgen.acked),
        inbound=inbound,
        outbound=outbound,
        graph_accepted=dict(graph.accepted),
        graph_attempts=dict(graph.attempts),
        wamid_tokens={d.wamid: d.text.rsplit(" ", 1)[1] for d in plan},
    )


def extra_counts() -> dict[str, Any]:
    from conversations.models import Conversation, LLMCall

    return {
        "conversations": Conversation.objects.count(),
        "conversations_needing_staff": Conversation.objects.filter(needs_human=True).count(),
        "conversations_ai_paused": Conversation.objects.filter(ai_mode="paused").count(),
        "llm_calls_by_outcome": dict(Counter(LLMCall.objects.values_list("outcome", flat=True))),
    }


def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(name) for name, _ in rows)
    lines = []
    for name, value in rows:
        if isinstance(value, dict):
            value = "; ".join(f"{k} = {v}" for k, v in value.items()) or "-"
        lines.append(f"{name.ljust(width)}  {value}")
    return "\n".join(lines)


def report(result: dict[str, Any]) -> str:
    c, load = result["counts"], result["load"]
    rows: list[tuple[str, Any]] = [
        ("messages sent (distinct wamids)", c["wamids_sent"]),
        ("webhook posts (incl. duplicates, retries)", load["posts"]),
        ("webhook responses", load["responses"]),
        ("ack latency p50 / p99 (ms)", f"{load['ack_ms_p50']} / {load['ack_ms_p99']}"),
        ("inbound rows stored / distinct", f"{c['inbound_stored']} / {c['inbound_distinct']}"),
        ("inbound by status", c["inbound_by_status"]),
        ("  failed, by reason", c["inbound_failed_reasons"]),
        ("  skipped, by reason", c["inbound_skipped_reasons"]),
        ("outbound by author", c["outbound_by_author"]),
        ("outbound by status", c["outbound_by_status"]),
        ("  failed sends, by reason", c["outbound_failed_reasons"]),
        ("  failed but accepted by Graph", c["outbound_failed_but_accepted"]),
        ("Graph send attempts / accepted", f"{c['graph_send_attempts']} / {c['graph_sends_accepted']}"),
        ("max sends per message id", c["max_sends_per_message"]),
        ("max AI replies per turn", c["max_ai_replies_per_turn"]),
        ("answered msgs re-shown as unanswered", c["inbound_reshown_after_answer"]),
        (
            "conversations (needing staff, AI paused)",
            f"{c['conversations']} ({c['conversations_needing_staff']}, {c['conversations_ai_paused']})",
        ),
        ("LLM calls by outcome", c["llm_calls_by_outcome"]),
        ("injected LLM failures", result["faults"]["llm_failures"]),
        ("injected Graph failures", result["faults"]["graph_failures"]),
        ("worker SIGKILLs", result["faults"]["worker_kills"]),
        ("Redis restarts", result["faults"]["redis_restarts"]),
        ("unexpected process restarts", result["faults"]["unexpected_restarts"]),
        ("sweeper runs (re-enqueued)", f"{result['sweeper']['runs']} ({result['sweeper']['requeued']})"),
        ("quiescent after sending", f"{result['quiescent']} ({result['drain_seconds']} s)"),
        ("duration (s)", result["duration_seconds"]),
    ]
    verdict = (
        "ALL INVARIANTS HOLD"
        if not result["violations"]
        else "VIOLATIONS:\n  " + "\n  ".join(result["violations"])
    )
    return table(rows) + "\n\n" + verdict


# --- Main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="icmp-chaos-"))
    say(f"logs in {log_dir}")
    plan = plan_deliveries(
        messages=args.messages,
        contacts=args.contacts,
        rate=args.rate,
        duplicate_rate=args.duplicates,
        seed=args.seed,
    )
    send_seconds = args.messages / args.rate
    kills = args.kills if args.kills is not None else max(3, round(send_seconds / 60))
    kills_at = kill_schedule(duration=send_seconds, kills=kills, seed=args.seed)
    redis_at = round(send_seconds * random.Random(args.seed).uniform(0.4, 0.6), 1)

    llm = chaos_llm(failure_rate=args.llm_failures, timeout_delay=LLM_TIMEOUT + 1.5, seed=args.seed).start()
    graph = chaos_graph(failure_rate=args.graph_failures, seed=args.seed).start()
    redis_port, web_port = free_port(), free_port()
    env = child_env(args, redis_port=redis_port, llm_url=llm.base_url, graph_url=graph.url)
    services: list[Service] = []
    sweeper: Sweeper | None = None
    try:
        say(f"fresh database {_db_name(args.database_url)}")
        database_fresh(args.database_url, env)

        redis = Service(
            "redis",
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            env,
            log_dir,
        ).start()
        services.append(redis)
        wait_until(lambda: redis_ping(redis_port), timeout=20, what="redis")

        os.environ.update(env)
        import django

        django.setup()
        world_create(burst_window=args.burst_window)

        web = Service(
            "web",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "icmp.wsgi:application",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                str(args.web_workers),
                "--timeout",
                "30",
                "--graceful-timeout",
                "5",
            ],
            env,
            log_dir,
        ).start()
        worker = Service(
            "worker",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "icmp",
                "worker",
                "--pool=prefork",
                f"--concurrency={args.concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--loglevel={args.worker_loglevel}",
            ],
            env,
            log_dir,
        ).start()
        services += [web, worker]
        wait_until(lambda: http_ok(f"http://127.0.0.1:{web_port}/ping"), timeout=60, what="gunicorn")

        sweeper = Sweeper(interval=args.sweep_every)
        sweeper.start()
        chaos = Chaos(worker=worker, redis=redis, web=web, redis_port=redis_port)
        loadgen = LoadGen(f"http://127.0.0.1:{web_port}/webhooks/whatsapp/", plan)
        stop = threading.Event()
        say(
            f"sending {args.messages} messages from {args.contacts} contacts at {args.rate}/s "
            f"(~{send_seconds:.0f} s); worker kills at {kills_at} s, Redis restart at {redis_at} s"
        )
        start = time.monotonic()
        chaos_thread = threading.Thread(
            target=chaos.run, args=(start, kills_at, redis_at, stop, args.seed), name="chaos", daemon=True
        )
        chaos_thread.start()
        loadgen.run(start, stop)
        say(f"all deliveries acknowledged or given up after {time.monotonic() - start:.0f} s; draining")
        stop.set()
        chaos_thread.join()
        quiescent, drained = drain(timeout=args.drain_timeout, chaos=chaos, start=start)
        time.sleep(1.0)  # a send in flight reaches the fake Graph API
        sweeper.stop.set()
        sweeper.join()
        for service in (worker, web, redis):
            service.stop()

        counts, violations = evaluate(facts_gather(plan, loadgen, graph))
        counts.update(extra_counts())
        if not quiescent:
            violations.append(f"not quiescent after {args.drain_timeout:.0f} s of draining")
        result = {
            "command": "python -m bench.chaos " + " ".join(argv if argv is not None else sys.argv[1:]),
            "config": {
                "messages": args.messages,
                "contacts": args.contacts,
                "rate_per_second": args.rate,
                "seed": args.seed,
                "duplicate_share": args.duplicates,
                "llm_failure_share": args.llm_failures,
                "graph_failure_share": args.graph_failures,
                "llm_max_retries": args.llm_retries,
                "llm_timeout_seconds": LLM_TIMEOUT,
                "worker_concurrency": args.concurrency,
                "burst_window_seconds": args.burst_window,
                "web_workers": args.web_workers,
                "turn_lease_seconds": int(env["TURN_LEASE_SECONDS"]),
                "sweeper_every_seconds": args.sweep_every,
                "sweeper_stuck_after_seconds": int(env["SWEEPER_STUCK_AFTER_SECONDS"]),
                "sweeper_sending_unknown_after_seconds": int(env["SWEEPER_SENDING_UNKNOWN_AFTER_SECONDS"]),
            },
            "counts": counts,
            "load": loadgen.summary(),
            "faults": {
                "worker_kills": chaos.kills,
                "redis_restarts": chaos.redis_restarts,
                "unexpected_restarts": dict(chaos.unexpected_restarts),
                "llm_failures": dict(llm.failures),
                "graph_failures": dict(graph.failures),
                "events": chaos.events,
            },
            "sweeper": {
                "runs": sweeper.runs,
                "requeued": dict(sweeper.requeued),
                "errors": dict(sweeper.errors),
            },
            "quiescent": quiescent,
            "drain_seconds": round(drained, 1),
            "duration_seconds": round(time.monotonic() - began, 1),
            "violations": violations,
            "logs": str(log_dir),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print()
        print(report(result))
        print(f"\nwritten to {args.output}")
        return 1 if violations else 0
    finally:
        if sweeper is not None:
            sweeper.stop.set()
        for service in reversed(services):
            service.stop()
        llm.stop()
        graph.stop()


if __name__ == "__main__":
    sys.exit(main())
