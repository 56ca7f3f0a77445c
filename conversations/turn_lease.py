"""A turn's lease on its conversation: claimed, renewed by a heartbeat, given back.

The lease is two columns of the conversation row (`turn_lease_until`, `turn_lease_token`),
claimed with a conditional UPDATE that holds no transaction open during LLM calls
(the same on PostgreSQL and SQLite). It is short and a heartbeat renews it while
the turn runs, so a slow LLM never loses it and a killed worker's conversation is
free again within TURN_LEASE_SECONDS. A turn gives it back in its own last
UPDATE when no other customer message is pending (`lease_release_when_idle`), or
with `lease_release`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, models
from django.db.models import Case, F, Q, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from conversations.models import Author, Conversation, Direction, Message, MessageStatus
from icmp.returning import update_returning

logger = logging.getLogger(__name__)

# A customer message waiting for a turn, or in one.
PENDING_STATUSES = (MessageStatus.RECEIVED, MessageStatus.PROCESSING)


@dataclass(frozen=True)
class Lease:
    token: uuid.UUID
    business_id: Any


def lease_claim(conversation_id) -> Lease | None:
    """Take the conversation's lease if it is free: one UPDATE, which also reads its business."""
    token = uuid.uuid4()
    now = timezone.now()
    rows = update_returning(
        Conversation.objects.filter(pk=conversation_id).filter(
            Q(turn_lease_until__isnull=True) | Q(turn_lease_until__lt=now)
        ),
        returning=("business",),
        turn_lease_until=now + timedelta(seconds=settings.TURN_LEASE_SECONDS),
        turn_lease_token=token,
    )
    return Lease(token, rows[0].business_id) if rows else None


class LeaseHeartbeat:
    """Renews a turn's lease every TURN_LEASE_RENEW_SECONDS from a thread of its own.

    The thread touches the database only for the one UPDATE of each beat and
    gives its connection back at once; it stops when the turn ends or when the
    lease is no longer ours (`releasing`: the turn is giving it back itself).
    """

    def __init__(self, conversation_id, token: uuid.UUID) -> None:
        self.conversation_id, self.token = conversation_id, token
        self.releasing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="turn-lease-heartbeat", daemon=True)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(settings.TURN_LEASE_RENEW_SECONDS):
            try:
                renewed = Conversation.objects.filter(
                    pk=self.conversation_id, turn_lease_token=self.token
                ).update(turn_lease_until=timezone.now() + timedelta(seconds=settings.TURN_LEASE_SECONDS))
            except Exception:  # the database is away: the turn's own writes will say so
                logger.warning("turn lease not renewed", extra={"conversation_id": str(self.conversation_id)})
                renewed = 1
            finally:
                connection.close()
            if not renewed:
                if not self.releasing:
                    logger.warning("turn lease lost", extra={"conversation_id": str(self.conversation_id)})
                return


def lease_release(conversation_id, token: uuid.UUID) -> None:
    Conversation.objects.filter(pk=conversation_id, turn_lease_token=token).update(
        turn_lease_until=None, turn_lease_token=None
    )


def pending_sql(conversation: str, params: list[Any]) -> tuple[str, list[Any]]:
    """`FROM … WHERE …` of a conversation's pending customer messages (alias `m`), with its
    parameters; `conversation` is the SQL of its id (a column or a placeholder in `params`).

    Written out from the models' names: the ORM's subqueries cost a turn milliseconds of CPU
    to compile, more than the rest of its statements.
    """
    qn = connection.ops.quote_name
    meta = Message._meta
    column = {
        name: qn(meta.get_field(name).column) for name in ("conversation", "direction", "author", "status")
    }
    sql = (
        f"FROM {qn(meta.db_table)} m WHERE m.{column['conversation']} = {conversation}"
        f" AND m.{column['direction']} = %s AND m.{column['author']} = %s"
        f" AND m.{column['status']} IN ({', '.join(['%s'] * len(PENDING_STATUSES))})"
    )
    return sql, [*params, Direction.IN, Author.CUSTOMER, *PENDING_STATUSES]


def message_column(name: str) -> str:
    """A column of the message table, quoted, for `pending_sql`'s alias `m`."""
    return f"m.{connection.ops.quote_name(Message._meta.get_field(name).column)}"


def db_value(model: type[models.Model], field: str, value: Any) -> Any:
    """`value` as the database takes it for `model.field` (a UUID on SQLite is text)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def _nothing_else_pending(pending_ids: list[Any]) -> RawSQL:
    """SQL true when the conversation (the row being updated) has no pending customer message
    but these."""
    qn = connection.ops.quote_name
    sql, params = pending_sql(f"{qn(Conversation._meta.db_table)}.{qn('id')}", [])
    ids = [db_value(Message, "id", pk) for pk in pending_ids]
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"NOT EXISTS (SELECT 1 {sql} AND {message_column('id')} NOT IN ({placeholders}))"
    return RawSQL(sql, [*params, *ids], output_field=models.BooleanField())  # noqa: S611


def lease_release_when_idle(*, pending_ids: list[Any]) -> dict[str, Any]:
    """The fields of an UPDATE of the conversation that give the lease back when nothing but
    `pending_ids` is pending (a message that arrived during the turn keeps it for the next)."""
    idle = _nothing_else_pending(pending_ids)
    return {
        "turn_lease_until": Case(When(idle, then=Value(None)), default=F("turn_lease_until")),
        "turn_lease_token": Case(When(idle, then=Value(None)), default=F("turn_lease_token")),
    }
