"""The inbox's hot queries can be answered from the index built for them (PostgreSQL).

The scale benchmark (bench/bench_scale.py) measures these queries at a million
messages. Here the planner is asked only whether it *can* use each index: the
exact SQL a page ran is EXPLAINed with sequential scans priced out
(enable_seqscan off), on a table vacuumed as autovacuum keeps it, and the plan
must name the index. Without it the planner falls back to another index (the
flagged history, or every conversation of a business) or to a Seq Scan, and
the test fails.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from conversations.admin.inbox import NEEDS_HUMAN_CAP
from conversations.models import AIMode, Contact, Conversation, ConversationStatus
from icmp.admin_paginator import COUNT_LIMIT

# VACUUM runs outside a transaction: these tests commit, and the tables are emptied after each.
pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "/admin/conversations/conversation/"
WAITING = "?needs_human__exact=1&status__exact=open"
TABLE = '"conversations_conversation"'
BADGE_LIMIT = f"LIMIT {NEEDS_HUMAN_CAP + 1}"
PAGE_COUNT_LIMIT = f"LIMIT {COUNT_LIMIT + 1}"
CONVERSATIONS = 500


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("query plans need PostgreSQL")


@pytest.fixture
def conversations(alice, bob):
    """Per business, as in the scale benchmark: one in 5 closed, one in 20 of them after a
    handover (closed ones keep the flag), one in 100 open, paused and waiting for a person.

    The businesses' rows are interleaved as on a live platform: stored one business after
    the other, the table would be ordered by business and its plain index look cheaper.
    """
    tenants = (alice, bob)
    contacts = {
        tenant.business.pk: Contact.objects.bulk_create(
            Contact(business=tenant.business, channel_account=tenant.channel, external_id=f"plan-{n}")
            for n in range(CONVERSATIONS)
        )
        for tenant in tenants
    }
    Conversation.objects.bulk_create(
        Conversation(
            business=tenant.business,
            contact=contacts[tenant.business.pk][n],
            channel_account=tenant.channel,
            status=ConversationStatus.CLOSED if n % 5 == 4 else ConversationStatus.OPEN,
            needs_human=n % 20 == 4 or n % 100 == 1,
            ai_mode=AIMode.PAUSED if n % 100 == 1 else AIMode.AUTO,
        )
        for n in range(CONVERSATIONS)
        for tenant in tenants
    )
    with connection.cursor() as cursor:
        # Statistics and the visibility map, as autovacuum keeps a live table.
        cursor.execute("VACUUM ANALYZE conversations_conversation")


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def plans(client, url: str) -> dict[str, str]:
    """SQL → plan (seq scans priced out) of every query on conversations the page ran."""
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    found = {}
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for query in ctx.captured_queries:
                sql = query["sql"]
                if sql.startswith("SELECT") and f"FROM {TABLE}" in sql:
                    cursor.execute(f"EXPLAIN {sql}")
                    found[sql] = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")
    return found


def plan_of(found: dict[str, str], *, containing: str) -> str:
    matching = [plan for sql, plan in found.items() if containing in sql]
    assert len(matching) == 1, (containing, list(found))
    return matching[0]


def page_plan(found: dict[str, str]) -> str:
    """The page's rows: the one query that selects the conversations' columns."""
    return plan_of(found, containing=f'SELECT {TABLE}."id", {TABLE}."created_at"')


def uses(plan: str, *indexes: str) -> bool:
    return any(f"using {index} on" in plan or f"Bitmap Index Scan on {index}" in plan for index in indexes)


# A business's waiting conversations, or every business's (the superuser's inbox).
WAITING_INDEXES = ("conv_waiting", "conv_waiting_all")


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw-root")


@pytest.mark.parametrize("who", ["superuser", "alice_editor"])
def test_the_needs_human_badge_counts_from_the_waiting_index(conversations, request, who):
    found = plans(login(request.getfixturevalue(who)), CHANGELIST)
    badge = plan_of(found, containing=BADGE_LIMIT)
    assert uses(badge, *WAITING_INDEXES), badge


def test_the_superusers_inbox_page_reads_the_activity_index(conversations, superuser):
    page = page_plan(plans(login(superuser), CHANGELIST))
    assert uses(page, "conv_activity"), page


@pytest.mark.parametrize("who", ["superuser", "alice_editor"])
def test_the_badges_link_counts_from_the_waiting_index(conversations, request, who):
    found = plans(login(request.getfixturevalue(who)), CHANGELIST + WAITING)
    count = plan_of(found, containing=PAGE_COUNT_LIMIT)
    assert uses(count, *WAITING_INDEXES), count


def test_the_badges_link_lists_every_businesss_waiting_conversations_from_the_waiting_index(
    conversations, superuser
):
    page = page_plan(plans(login(superuser), CHANGELIST + WAITING))
    assert uses(page, "conv_waiting_all"), page


@pytest.mark.parametrize("who", ["superuser", "alice_editor"])
def test_the_ai_paused_filter_counts_from_the_paused_index(conversations, request, who):
    found = plans(login(request.getfixturevalue(who)), CHANGELIST + "?ai_mode__exact=paused")
    count = plan_of(found, containing=PAGE_COUNT_LIMIT)
    assert uses(count, "conv_ai_paused"), count


def test_the_apis_ai_paused_filter_lists_from_the_paused_index(conversations, alice):
    page = plan_of(plans(alice.client(), "/api/v1/conversations/?ai_mode=paused"), containing="ORDER BY")
    assert uses(page, "conv_ai_paused"), page
