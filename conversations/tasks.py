"""Celery tasks: thin doors onto services. They take ids and re-read state.

Every task is idempotent: it claims its work with a conditional UPDATE, so a
redelivery (acks_late + reject_on_worker_lost) or a sweeper re-enqueue never
does the work twice. Without REDIS_URL they run in-process after commit.
"""

from __future__ import annotations

import logging

from celery import current_app, shared_task
from django.conf import settings

from conversations.embedded import embedded_runner
from conversations.outbound import message_send
from conversations.sweeper import messages_sweep
from conversations.turns import conversation_turn_process

logger = logging.getLogger(__name__)


def safe_enqueue(task, args: list, *, countdown: float | None = None) -> None:
    """Enqueue after commit; a broker outage must not fail the request that stored the work.

    The rows are committed, so the sweeper re-enqueues them once the broker is back.
    In embedded mode (no broker) the process's runner takes the task instead.
    A countdown is capped at BROKER_MAX_COUNTDOWN_SECONDS, below the broker's visibility
    timeout: a task woken early (a long burst window) checks again and waits the rest.
    """
    if countdown:
        countdown = min(countdown, settings.BROKER_MAX_COUNTDOWN_SECONDS)
    runner = embedded_runner()
    if runner is not None:
        if countdown:
            runner.submit_later(countdown, task.run, *args)
        else:
            runner.submit(task.run, *args)
        return
    try:
        if countdown:
            task.apply_async(args=args, countdown=countdown)
        else:
            task.delay(*args)
    except Exception:  # kombu/redis raise many kinds; the database is the source of truth
        logger.warning("enqueue failed; the sweeper will retry", extra={"task": task.name}, exc_info=True)


def _in_process() -> bool:
    """Eager mode without the embedded runner: the task runs inside the request."""
    return bool(current_app.conf.task_always_eager) and embedded_runner() is None


def _later(task, args: list, countdown: float) -> None:
    # In-process (eager) mode has no broker to hold a countdown, and the
    # running turn already loops over new messages: the sweeper is the backstop.
    if _in_process():
        return
    safe_enqueue(task, args, countdown=countdown)


@shared_task(name="conversations.process_conversation", ignore_result=True)
def process_conversation(conversation_id: str) -> str:
    outcome = conversation_turn_process(conversation_id=conversation_id, wait_for_burst=not _in_process())
    if outcome.retry_in is not None:
        _later(process_conversation, [conversation_id], max(outcome.retry_in, 0.1))
    return outcome.status


@shared_task(name="conversations.send_message", ignore_result=True)
def send_message(message_id: str) -> str:
    outcome = message_send(message_id=message_id)
    if outcome.retry_in is not None:
        _later(send_message, [message_id], outcome.retry_in)
    return outcome.status


@shared_task(name="conversations.sweep", ignore_result=True)
def sweep() -> dict:
    return messages_sweep()
