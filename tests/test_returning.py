"""icmp.returning.update_returning: the UPDATE's rows, read back in the same statement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conversations.models import Conversation, Message
from icmp.returning import update_returning


def test_the_updated_rows_come_back_converted_in_one_query(alice, bob):
    until = timezone.now() + timedelta(seconds=30)
    alice.conversation.collected_data = {"name": "Ana"}
    alice.conversation.save(update_fields=["collected_data"])

    with CaptureQueriesContext(connection) as queries:
        rows = update_returning(
            Conversation.objects.filter(pk=alice.conversation.pk),
            returning=("business", "turn_lease_until", "collected_data", "needs_human", "ai_turns"),
            turn_lease_until=until,
            ai_turns=F("ai_turns") + 2,
        )

    assert len(queries) == 1 and "RETURNING" in queries[0]["sql"]
    [row] = rows
    assert row.pk == alice.conversation.pk and row.business_id == alice.business.pk
    assert row.turn_lease_until == until
    assert row.collected_data == {"name": "Ana"} and row.needs_human is False and row.ai_turns == 2
    assert "contact_id" in row.get_deferred_fields()  # what was not asked for is not read
    assert Conversation.objects.get(pk=bob.conversation.pk).ai_turns == 0


def test_nothing_matched_is_an_empty_list_and_changes_nothing(alice):
    rows = update_returning(
        Message.objects.filter(pk=alice.conversation.pk), returning=("status",), status="x"
    )

    assert rows == []


def test_every_matched_row_comes_back(alice):
    ids = set(Message.objects.filter(conversation=alice.conversation).values_list("pk", flat=True))

    rows = update_returning(
        Message.objects.filter(conversation=alice.conversation),
        returning=("attempts",),
        attempts=F("attempts") + 1,
    )

    assert {r.pk for r in rows} == ids and {r.attempts for r in rows} == {1}


def test_a_sliced_queryset_is_refused(alice):
    with pytest.raises(TypeError):
        update_returning(Message.objects.all()[:1], returning=("status",), status="x")
