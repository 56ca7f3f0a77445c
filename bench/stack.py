"""The production-mode stack for one benchmark run, always cleaned up.

PostgreSQL database `icmp_bench` (cloned from a freshly migrated template
`icmp_bench_tpl`, rebuilt whenever the migrations change), Redis db 13 with a
per-run key prefix, gunicorn (`icmp.wsgi`, or the baseline app) and a Celery
prefork worker as child processes, and the fake LLM and Graph servers as
threads of this process. This process configures Django with the same
environment, so a benchmark can seed and query the database directly.

Use:

    with bench_stack(llm_delay=0.3) as stack:
        stack.web_start()
        stack.worker_start()
        ...
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.fake_servers import BenchGraph, BenchLLM
from bench.procfs import group_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DB_NAME = os.environ.get("BENCH_DB_NAME", "icmp_bench")
TEMPLATE_DB = f"{DB_NAME}_tpl"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
APP_SECRET = "bench-app-secret"
SECRET_KEY = "bench-secret-key-not-for-production-0123456789abcdefghijklmnop"
# base64 of "bench-only-field-encryption-key!": channel secrets are encrypted at rest.
FIELD_ENCRYPTION_KEYS = "YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE="
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _db_url(name: str) -> str:
    parts = urlsplit(PG_ADMIN_URL)
    return parts._replace(path=f"/{name}").geturl()


def _admin_execute(*statements: str) -> list[tuple]:
    import psycopg

    rows: list[tuple] = []
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for sql in statements:
            cur = conn.execute(sql)
            if cur.description:
                rows.extend(cur.fetchall())
    return rows


def _migrations_fingerprint() -> str:
    # The recipe is part of the fingerprint: a template built another way is rebuilt.
    digest = hashlib.sha256(b"migrate+seed_templates")
    for path in sorted(ROOT.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def base_env(**extra: str) -> dict[str, str]:
    """The environment of every process of the stack (and of this one)."""
    env = {
        "DJANGO_SETTINGS_MODULE": "icmp.settings",
        "ICMP_SKIP_DOTENV": "1",
        "DEBUG": "0",
        "SECRET_KEY": SECRET_KEY,
        "FIELD_ENCRYPTION_KEYS": FIELD_ENCRYPTION_KEYS,
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": _db_url(DB_NAME),
        # (4 web workers + 3 worker children + this process) x 4 stays far under max_connections.
        "DATABASE_POOL_MIN_SIZE": "1",
        "DATABASE_POOL_MAX_SIZE": "4",
        "REDIS_URL": REDIS_URL,
        "META_APP_SECRET": APP_SECRET,
        "META_GRAPH_VERSION": "v25.0",
        "API_THROTTLE_RATE": "1000000/min",
        "LLM_MAX_RETRIES": "0",
        "LLM_TIMEOUT_SECONDS": "30",
    }
    env.update(extra)
    return env


def template_ensure(*, rebuild: bool = False) -> None:
    """A migrated template database, rebuilt when the migrations changed (or on request)."""
    fingerprint = _migrations_fingerprint()
    rows = _admin_execute(
        f"SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{TEMPLATE_DB}'"  # noqa: S608 (a constant)
    )
    if rows and rows[0][0] == fingerprint and not rebuild:
        return
    _admin_execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB} WITH (FORCE)", f"CREATE DATABASE {TEMPLATE_DB}")
    env = {**os.environ, **base_env(DATABASE_URL=_db_url(TEMPLATE_DB), REDIS_URL="")}
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_templates"]):
        # As a deployment does: the schema, then the platform's default prompt templates.
        subprocess.run(  # noqa: S603 (our own command line)
            [PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )
    _admin_execute(f"COMMENT ON DATABASE {TEMPLATE_DB} IS '{fingerprint}'")


def database_fresh() -> None:
    """`icmp_bench` as a copy of the migrated template (a second or so, not a migrate)."""
    template_ensure()
    _admin_execute(
        f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)", f"CREATE DATABASE {DB_NAME} TEMPLATE {TEMPLATE_DB}"
    )


def static_ensure(env: dict[str, str]) -> None:
    """The admin renders through the manifest storage when DEBUG is off: it needs collectstatic."""
    if (ROOT / "staticfiles" / "staticfiles.json").exists():
        return
    subprocess.run(  # noqa: S603 (our own command line)
        [PYTHON, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
    )


def _wait_http(url: str, *, timeout: float = 120.0, process: subprocess.Popen | None = None) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@dataclass
class Stack:
    env: dict[str, str]
    llm: BenchLLM
    graph: BenchGraph
    web_url: str = ""
    baseline_url: str = ""
    _processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    # --- processes ---------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(ROOT / "bench" / "results" / f"{name}.log.tmp", "wb")  # noqa: SIM115 (kept by Popen)
        process = subprocess.Popen(  # noqa: S603 (our own command lines)
            args,
            cwd=ROOT,
            env={**os.environ, **env},
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._processes[name] = process
        return process

    def stop(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def cpu_seconds(self, name: str) -> float:
        """CPU seconds spent so far by a started process and its children (gunicorn workers)."""
        return group_cpu_seconds(self._processes[name].pid)

    def stop_all(self) -> None:
        for name in list(self._processes):
            self.stop(name)

    def _gunicorn(self, name: str, wsgi: str, env: dict[str, str], workers: int) -> str:
        port = free_port()
        args = [
            PYTHON,
            "-m",
            "gunicorn",
            wsgi,
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--backlog",
            "2048",
            "--timeout",
            "60",
            "--log-level",
            "warning",
        ]
        process = self._spawn(name, args, env)
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/", process=process)
        return url

    def web_start(self, *, workers: int = 4) -> str:
        """gunicorn serving icmp.wsgi; returns its base URL."""
        self.web_url = self._gunicorn("web", "icmp.wsgi:application", self.env, workers)
        return self.web_url

    def baseline_start(self, *, workers: int = 4) -> str:
        """The same gunicorn config serving the bare baseline app (bench/baseline_app)."""
        from bench.baseline_app.views import table_ensure

        table_ensure(self.env["DATABASE_URL"])
        env = {**self.env, "DJANGO_SETTINGS_MODULE": "bench.baseline_app.settings"}
        self.baseline_url = self._gunicorn("baseline", "bench.baseline_app.wsgi:application", env, workers)
        return self.baseline_url

    def worker_start(self, *, concurrency: int = 3, pool: str = "prefork") -> None:
        args = [
            PYTHON,
            "-m",
            "celery",
            "-A",
            "icmp",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel=WARNING",
            "-n",
            f"bench-{uuid.uuid4().hex[:8]}@%h",
        ]
        self._spawn("worker", args, self.env)
        self._worker_wait()

    def _worker_wait(self, timeout: float = 120.0) -> None:
        from icmp.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._processes["worker"].poll() is not None:
                raise RuntimeError("the Celery worker exited; see bench/results/worker.log.tmp")
            if app.control.ping(timeout=1.0):
                return
        raise RuntimeError("the Celery worker did not answer a ping")

    def queue_clear(self) -> None:
        """Empty Celery's default queue on the bench Redis db (left-overs of an earlier run)."""
        import redis

        redis.Redis.from_url(self.env["REDIS_URL"]).delete("celery")


def _django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


@contextmanager
def bench_stack(*, llm_delay: float = 0.0, llm: bool = True, fresh_db: bool = True) -> Iterator[Stack]:
    """Fake servers, a fresh database, this process's Django; processes are started on demand."""
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    fake_llm = BenchLLM(delay=llm_delay).start()
    graph = BenchGraph().start()
    extra = {
        "META_GRAPH_URL": graph.url,
        "CACHE_KEY_PREFIX": f"icmp-bench-{uuid.uuid4().hex[:8]}",
        "OPENAI_BASE_URL": fake_llm.base_url if llm else "",
        "OPENAI_API_KEY": "bench" if llm else "",
    }
    env = base_env(**extra)
    stack = Stack(env=env, llm=fake_llm, graph=graph)
    # A SIGTERM (timeout, Ctrl-C from a parent) still runs the clean-up below.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if fresh_db:
            database_fresh()
        _django_setup(env)
        static_ensure(env)
        stack.queue_clear()
        yield stack
    finally:
        stack.stop_all()
        from django.db import connections

        connections.close_all()
        for connection in connections.all(initialized_only=True):
            # The pool's idle connections die with a dropped database: a second stack in
            # this process (bench_burst runs two) must open new ones.
            getattr(connection, "close_pool", lambda: None)()
        fake_llm.stop()
        graph.stop()
        signal.signal(signal.SIGTERM, previous)


# --- seeding and webhook bodies (shared by the benchmarks) ---------------------------


@dataclass(frozen=True)
class BenchTenant:
    business_id: uuid.UUID
    api_key: str
    account_id: uuid.UUID
    phone_number_id: str


def tenants_create(count: int, *, burst_window: int = 0, prefix: str = "Bench") -> list[BenchTenant]:
    """`count` businesses, each with a WhatsApp account, through the product's services."""
    from businesses.models import AIControlSettings
    from businesses.services import business_create
    from channels_app.models import ChannelAccount, ChannelKind

    tenants = []
    for i in range(count):
        business, raw_key = business_create(name=f"{prefix} {i}", owner_email=f"owner{i}@bench.example")
        AIControlSettings.objects.filter(business=business).update(burst_window_seconds=burst_window)
        phone = f"{1550000000 + i}"
        account = ChannelAccount.objects.create(
            business=business,
            kind=ChannelKind.WHATSAPP,
            external_id=phone,
            name=f"{prefix} {i} WhatsApp",
            access_token=f"EAAG-bench-{phone}",
        )
        tenants.append(BenchTenant(business.id, raw_key, account.id, phone))
    return tenants


def whatsapp_body(phone_number_id: str, messages: list[tuple[str, str, str]]) -> bytes:
    """A WhatsApp Cloud API webhook body carrying `messages` as (wa_id, wamid, text)."""
    import json

    now = str(int(time.time()))
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": phone_number_id, "phone_number_id": phone_number_id},
        "contacts": [
            {"profile": {"name": f"Customer {wa_id[-4:]}"}, "wa_id": wa_id} for wa_id, _, _ in messages
        ],
        "messages": [
            {"from": wa_id, "id": wamid, "timestamp": now, "type": "text", "text": {"body": text}}
            for wa_id, wamid, text in messages
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": f"WABA{phone_number_id}", "changes": [{"field": "messages", "value": value}]}],
    }
    return json.dumps(payload).encode()


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    import hmac

    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
