"""Abstract model bases shared by every app."""

from __future__ import annotations

from django.db import models

from icmp.ids import uuid7


class BaseModel(models.Model):
    """UUID (v7) public id plus creation and update times."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def connections_release() -> None:
    """Give this thread's database connections back before a network wait (an LLM request,
    a Graph send): with the native pool they return to it, so a connection serves the short
    database phases of many turns instead of idling through one turn's wait.

    A no-op inside a transaction (its connection must stay) and for SQLite's in-memory
    database (Django keeps that one open).
    """
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
