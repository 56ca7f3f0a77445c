"""The embedded runner: `make run`'s worker, in the web process, on the worker's code path.

Without a broker (no REDIS_URL) and with EMBEDDED_RUNNER on, tasks do not run
inside the request that enqueued them: a pool of EMBEDDED_RUNNER_THREADS threads
runs them after the request's commit, a countdown (a burst window, a send
retry) is a timer, and the sweeper runs every SWEEPER_INTERVAL_SECONDS. So the
webhook answers Meta in milliseconds, a turn waits on the LLM without holding a
request, and lost work is recovered without cron. Like the threads-pool worker,
a turn gives its database connection back while it waits (icmp.db).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


class EmbeddedRunner:
    def __init__(self, *, threads: int, sweep_every: float) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="embedded-task")
        self._sweep_every = sweep_every
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="embedded-sweeper", daemon=True)
        self._sweeper.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._stop.is_set():
            return  # a timer that fired after shutdown: the sweeper of the next start picks it up
        try:
            self._pool.submit(self._run, fn, *args)
        except RuntimeError:  # shut down between the check and the submit
            logger.info("embedded task dropped at shutdown; the sweeper will find it")

    def submit_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        timer = threading.Timer(delay, self.submit, args=(fn, *args))
        timer.daemon = True
        timer.start()

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    @staticmethod
    def _run(fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # the rows say what is left to do; the sweeper comes back for it
            logger.exception("embedded task failed", extra={"task": getattr(fn, "__name__", str(fn))})
        finally:
            connections.close_all()

    def _sweep_forever(self) -> None:
        from celery import current_app

        # By name, as conversations.task_queue does: the runner sits below every service.
        sweep = current_app.tasks["conversations.sweep"].run
        while not self._stop.wait(self._sweep_every):
            self._run(sweep)


_runner: EmbeddedRunner | None = None
_lock = threading.Lock()


def embedded_runner() -> EmbeddedRunner | None:
    """The process's runner when embedded mode is on (and there is no broker), else None."""
    global _runner
    if not settings.EMBEDDED_RUNNER or settings.REDIS_URL:
        return None
    with _lock:
        if _runner is None:
            _runner = EmbeddedRunner(
                threads=settings.EMBEDDED_RUNNER_THREADS, sweep_every=settings.SWEEPER_INTERVAL_SECONDS
            )
        return _runner


def embedded_runner_stop() -> None:
    """Stop the runner (tests, and a process shutting down)."""
    global _runner
    with _lock:
        runner, _runner = _runner, None
    if runner is not None:
        runner.stop()
