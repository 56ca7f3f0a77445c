"""Enqueue the message path's tasks by name, after the transaction commits.

The one place that knows how work leaves a transaction: services (turns,
outbound, the inbound path, the sweeper) name the task they want run and never
import the task modules, so the message path imports one way, services below
the Celery doors in `conversations/tasks.py`.

- With a broker: `apply_async` after commit. A broker outage never fails the
  request that stored the work: the rows are committed and the sweeper
  re-enqueues them once the broker is back.
- With the embedded runner (`make run`): the process's thread pool runs the task.
- Eager mode (tests, no runner): Celery runs it in-process.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction

from conversations.embedded import embedded_runner

logger = logging.getLogger(__name__)

PROCESS_CONVERSATION = "conversations.process_conversation"
SEND_MESSAGE = "conversations.send_message"
SWEEP = "conversations.sweep"
APPLY_WEBHOOK_EVENT = "conversations.apply_webhook_event"


def _task(name: str):
    return current_app.tasks[name]


def enqueue_now(name: str, *args: Any, countdown: float | None = None) -> None:
    """Hand the task to the broker (or the embedded runner) now; never raises for a broker outage.

    A countdown is capped at BROKER_MAX_COUNTDOWN_SECONDS, below the broker's visibility
    timeout: a task woken early (a long burst window) checks again and waits the rest.
    """
    if countdown:
        countdown = min(countdown, settings.BROKER_MAX_COUNTDOWN_SECONDS)
    task = _task(name)
    runner = embedded_runner()
    if runner is not None:
        if countdown:
            runner.submit_later(countdown, task.run, *args)
        else:
            runner.submit(task.run, *args)
        return
    try:
        task.apply_async(args=list(args), countdown=countdown or None)
    except Exception:  # kombu/redis raise many kinds; the database is the source of truth
        logger.warning("enqueue failed; the sweeper will retry", extra={"task": name}, exc_info=True)


def enqueue(name: str, *args: Any, countdown: float | None = None) -> None:
    """Enqueue once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: enqueue_now(name, *args, countdown=countdown))


def runs_in_request() -> bool:
    """Eager mode without the embedded runner: a task runs inside the request that enqueued it."""
    return bool(current_app.conf.task_always_eager) and embedded_runner() is None
