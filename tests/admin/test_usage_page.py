"""Usage at a glance: a business's messages, AI turns, handoffs, tokens and cost per day and stage."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from conversations.models import (
    Author,
    Conversation,
    Direction,
    LLMCall,
    LLMOutcome,
    LLMPurpose,
    Message,
    MessageStatus,
)
from stages.models import Stage

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def usage_url(business) -> str:
    return reverse("admin:businesses_business_usage", args=[business.pk])


def days_ago(n: int) -> datetime:
    """Noon UTC, n days ago: safely inside that UTC day."""
    day = timezone.now().astimezone(UTC).date() - timedelta(days=n)
    return datetime.combine(day, time(12), tzinfo=UTC)


def message(tenant, *, at, direction=Direction.IN, author=Author.CUSTOMER, **fields) -> Message:
    row = Message.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        channel_account=tenant.channel,
        direction=direction,
        author=author,
        text=fields.pop("text", "text"),
        status=fields.pop("status", MessageStatus.SENT),
        **fields,
    )
    Message.objects.filter(pk=row.pk).update(created_at=at)
    return row


def call(tenant, *, at, trigger, stage, prompt, completion, cost, dry_run=False) -> LLMCall:
    row = LLMCall.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        message=trigger,
        stage=stage,
        purpose=LLMPurpose.RESPONSE,
        model="gpt-4o-mini",
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=cost,
        outcome=LLMOutcome.OK,
        dry_run=dry_run,
    )
    LLMCall.objects.filter(pk=row.pk).update(created_at=at)
    return row


@pytest.fixture
def activity(alice, bob):
    """Three days ago: two customer messages, one AI turn of two calls in a new stage, a handoff.

    Today the conftest world already holds two messages and one call (no cost) for each tenant.
    """
    quote = Stage.objects.create(business=alice.business, key="quote", name="<script>Quote</script>", order=3)
    at = days_ago(3)
    first = message(alice, at=at)
    message(alice, at=at + timedelta(minutes=1))
    call(alice, at=at, trigger=first, stage=alice.stage, prompt=100, completion=10, cost=Decimal("0.001"))
    call(alice, at=at, trigger=first, stage=quote, prompt=200, completion=20, cost=Decimal("0.002"))
    call(alice, at=at, trigger=first, stage=quote, prompt=999, completion=99, cost=Decimal("1"), dry_run=True)
    message(
        alice,
        at=at + timedelta(minutes=2),
        direction=Direction.OUT,
        author=Author.AI,
        payload={"announces_handoff": True},
    )
    message(alice, at=at + timedelta(minutes=3), direction=Direction.OUT, author=Author.SYSTEM)
    # Old activity, outside a 7-day window but inside 30 days.
    old = message(alice, at=days_ago(20))
    call(
        alice,
        at=days_ago(20),
        trigger=old,
        stage=alice.stage,
        prompt=1000,
        completion=100,
        cost=Decimal("0.01"),
    )
    # Bob's busy day must never show at Alice's.
    for _ in range(3):
        message(bob, at=at)
    return {"quote": quote}


def test_the_usage_page_draws_svg_charts_and_a_table_with_the_right_totals(alice, activity, alice_editor):
    response = login(alice_editor).get(usage_url(alice.business))

    assert response.status_code == 200
    usage = response.context["usage"]
    assert usage["days"] == 30
    assert len(usage["rows"]) == 30
    totals = usage["totals"]
    # Inbound: 1 (today's fixture) + 2 (three days ago) + 1 (20 days ago); outbound: 1 + 2.
    assert (totals["messages_in"], totals["messages_out"]) == (4, 3)
    assert totals["turns"] == 3  # today's fixture, three days ago, 20 days ago
    assert totals["handoffs"] == 1  # one conversation that day, announced twice
    assert totals["calls"] == 4  # the dry run is not usage
    assert (totals["prompt_tokens"], totals["completion_tokens"]) == (120 + 300 + 1000, 12 + 30 + 100)
    assert totals["cost"] == Decimal("0.013")
    by_day = {row["day"]: row for row in usage["rows"]}
    three_days_ago = by_day[days_ago(3).date()]
    assert (three_days_ago["messages_in"], three_days_ago["turns"], three_days_ago["handoffs"]) == (2, 1, 1)
    assert three_days_ago["tokens"] == 330
    by_stage = {row["key"]: row for row in usage["stages"]}
    assert by_stage["quote"]["tokens"] == 220
    assert by_stage["general"]["calls"] == 3

    html = response.content.decode()
    assert html.count('class="usage-svg"') == 5  # four per-day charts and the per-stage chart
    assert "<rect" in html and "<polyline" in html
    assert 'id="usage-days"' in html and 'id="usage-stages"' in html
    assert "<td>total</td><td>4</td><td>3</td><td>3</td><td>1</td><td>4</td>" in html
    assert "0.013000" in html
    assert "<script>Quote" not in html
    assert "&lt;script&gt;Quote" in html


def test_the_day_switch_narrows_the_period(alice, activity, alice_editor):
    response = login(alice_editor).get(usage_url(alice.business), {"days": "7"})

    usage = response.context["usage"]
    assert usage["days"] == 7
    assert len(usage["rows"]) == 7
    assert usage["totals"]["messages_in"] == 3
    assert usage["totals"]["calls"] == 3
    assert 'class="selected">7 days' in response.content.decode()

    assert (
        len(login(alice_editor).get(usage_url(alice.business), {"days": "90"}).context["usage"]["rows"]) == 90
    )


@pytest.mark.parametrize("days", ["abc", "-1", "0", "5", "100000", "9" * 40, ""])
def test_a_bad_day_switch_falls_back_to_30_days(alice, alice_editor, days):
    response = login(alice_editor).get(usage_url(alice.business), {"days": days})

    assert response.status_code == 200
    assert response.context["usage"]["days"] == 30


def test_an_empty_business_gets_empty_charts_not_an_error(alice, alice_editor):
    Message.objects.all().delete()
    LLMCall.objects.all().delete()

    response = login(alice_editor).get(usage_url(alice.business))

    assert response.status_code == 200
    assert response.context["usage"]["totals"]["messages_in"] == 0
    assert "No LLM calls in this period." in response.content.decode()


def test_the_usage_page_runs_a_fixed_number_of_queries(alice, alice_editor):
    client = login(alice_editor)
    client.get(usage_url(alice.business))
    with CaptureQueriesContext(connection) as quiet:
        client.get(usage_url(alice.business))
    for n in range(15):
        trigger = message(alice, at=days_ago(n))
        call(alice, at=days_ago(n), trigger=trigger, stage=alice.stage, prompt=1, completion=1, cost=None)
        Conversation.objects.filter(pk=alice.conversation.pk).update(handoff_notified_at=days_ago(n))
    with CaptureQueriesContext(connection) as busy:
        response = client.get(usage_url(alice.business))

    assert response.context["usage"]["totals"]["turns"] == 16
    assert len(busy) == len(quiet)


def test_a_handoff_without_any_message_is_counted_from_the_conversation(alice, alice_editor):
    Conversation.objects.filter(pk=alice.conversation.pk).update(
        needs_human=True, handoff_notified_at=days_ago(2)
    )

    usage = login(alice_editor).get(usage_url(alice.business)).context["usage"]

    assert usage["totals"]["handoffs"] == 1
    assert {row["day"]: row["handoffs"] for row in usage["rows"]}[days_ago(2).date()] == 1


def test_unpriced_calls_are_flagged_as_a_lower_bound(alice, alice_editor):
    html = login(alice_editor).get(usage_url(alice.business)).content.decode()

    # The conftest call has tokens but no cost (a model missing from LLM_PRICES).
    assert "1 call used a model without a price" in html


# -- links and scoping ---------------------------------------------------------------


def test_the_usage_page_is_linked_from_the_business_list_and_page(alice, alice_viewer):
    client = login(alice_viewer)
    url = usage_url(alice.business)

    assert url in client.get(reverse("admin:businesses_business_changelist")).content.decode()
    assert (
        url
        in client.get(reverse("admin:businesses_business_change", args=[alice.business.pk])).content.decode()
    )


def test_a_viewer_reads_the_usage_page(alice, alice_viewer):
    assert login(alice_viewer).get(usage_url(alice.business)).status_code == 200


def test_bobs_staff_get_404_on_alices_usage_page(alice, bob):
    client = login(bob.owner)

    assert client.get(usage_url(alice.business)).status_code == 404
    assert client.get(usage_url(bob.business)).status_code == 200


def test_staff_without_a_business_and_anonymous_visitors_are_kept_out(alice, charlie):
    assert login(charlie).get(usage_url(alice.business)).status_code == 403
    response = Client().get(usage_url(alice.business))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_an_unknown_business_id_is_a_404(alice_editor):
    client = login(alice_editor)

    assert client.get("/admin/businesses/business/not-a-uuid/usage/").status_code == 404
    assert (
        client.get("/admin/businesses/business/01900000-0000-7000-8000-000000000000/usage/").status_code
        == 404
    )
