"""Process primitives for the fault-injection run (`python -m bench.chaos`) and bench.schema_fuzz.

Each service is a subprocess in its own process group (a private Redis,
gunicorn, a Celery worker), so a kill takes its children with it.
"""

# The commands run are our own.
# ruff: noqa: S603

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def say(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A subprocess in its own process group, so a kill takes its children with it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0
        self.started_at = 0.0  # wall-clock time of the latest start
        # Once stopped for good, nothing (a supervisor thread) may start it again.
        self.retired = False

    def start(self) -> Service:
        if self.retired:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        log.write(f"\n--- start {self.starts + 1} at {time.strftime('%H:%M:%S')} ---\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.starts += 1
        self.started_at = time.time()
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL, wait: float = 15.0) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; for good."""
        self.retired = True
        if self.alive:
            self.kill(signal.SIGTERM, wait=10.0)
        elif self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # children of an exited leader
                os.killpg(self.process.pid, signal.SIGKILL)


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: S110 (not up yet)
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def db_call(fn, *, tries: int = 12, pause: float = 1.0):
    """`fn()`, again on a database error: after the PostgreSQL outage this process's pool still
    holds connections to the old server, and each fails once before it is dropped."""
    from django.db import connections
    from django.db.utils import InterfaceError, OperationalError

    for attempt in range(tries):
        try:
            return fn()
        except (OperationalError, InterfaceError):
            connections.close_all()
            if attempt == tries - 1:
                raise
            time.sleep(pause)
    return None


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def http_ok(url: str) -> bool:
    import requests

    return requests.get(url, timeout=2).status_code < 500
