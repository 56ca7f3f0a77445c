"""Celery tasks: thin doors onto services. They take ids and re-read state.

Every task is idempotent: it claims its work with a conditional UPDATE or a
row lock, so a redelivery (acks_late + reject_on_worker_lost) or a sweeper
re-enqueue never does the work twice. Services enqueue these by name
(conversations/task_queue.py) and never import this module, so the message
path imports one way.
"""

from __future__ import annotations

from celery import shared_task

from conversations import task_queue
from conversations.inbound.webhooks import webhook_event_apply
from conversations.outbound import message_send
from conversations.sweeper import messages_sweep
from conversations.turns import conversation_turn_process


def _later(name: str, args: list, countdown: float) -> None:
    # In-process (eager) mode has no broker to hold a countdown, and the
    # running turn already loops over new messages: the sweeper is the backstop.
    if task_queue.runs_in_request():
        return
    task_queue.enqueue_now(name, *args, countdown=countdown)


@shared_task(name=task_queue.APPLY_WEBHOOK_EVENT, ignore_result=True)
def apply_webhook_event(event_id: str) -> str:
    """Normalise a stored webhook event, then go straight on to the turn: no second queue hop.

    The first conversation's turn runs in this task (it waits for a burst window
    by scheduling itself, like any turn); the others of a batched body are
    enqueued, so they run in parallel on other threads.
    """
    applied = webhook_event_apply(event_id=event_id)
    if applied.event is None:
        return "not_claimed"
    first, *others = applied.conversation_ids or [None]
    for conversation_id in others:
        task_queue.enqueue_now(task_queue.PROCESS_CONVERSATION, str(conversation_id))
    if first is not None:
        process_conversation(str(first))
    return applied.event.status


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
