"""Celery tasks: thin doors onto services. They take ids and re-read state.

Every task is idempotent: it claims its work with a conditional UPDATE, so a
redelivery (acks_late + reject_on_worker_lost) or a sweeper re-enqueue never
does the work twice. Services enqueue these by name (conversations/task_queue.py)
and never import this module, so the message path imports one way.
"""

from __future__ import annotations

from celery import shared_task

from conversations import task_queue
from conversations.outbound import message_send
from conversations.sweeper import messages_sweep
from conversations.turns import conversation_turn_process


def _later(name: str, args: list, countdown: float) -> None:
    # In-process (eager) mode has no broker to hold a countdown, and the
    # running turn already loops over new messages: the sweeper is the backstop.
    if task_queue.runs_in_request():
        return
    task_queue.enqueue_now(name, *args, countdown=countdown)


@shared_task(name=task_queue.PROCESS_CONVERSATION, ignore_result=True)
def process_conversation(conversation_id: str) -> str:
    outcome = conversation_turn_process(
        conversation_id=conversation_id, wait_for_burst=not task_queue.runs_in_request()
    )
    if outcome.retry_in is not None:
        _later(task_queue.PROCESS_CONVERSATION, [conversation_id], max(outcome.retry_in, 0.1))
    return outcome.status


@shared_task(name=task_queue.SEND_MESSAGE, ignore_result=True)
def send_message(message_id: str) -> str:
    outcome = message_send(message_id=message_id)
    if outcome.retry_in is not None:
        _later(task_queue.SEND_MESSAGE, [message_id], outcome.retry_in)
    return outcome.status


@shared_task(name=task_queue.SWEEP, ignore_result=True)
def sweep() -> dict:
    return messages_sweep()
