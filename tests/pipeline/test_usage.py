"""usage/: the LLM call ledger aggregated by day, stage and model, per business."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import LLMCall, LLMOutcome, LLMPurpose
from stages.models import Stage

URL = "/api/v1/usage/"
# A window in the past: the tenancy fixture's own call (made "now") stays outside it.
MARCH_1 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
MARCH_1_LATE = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
MARCH_2_EARLY = datetime(2025, 3, 2, 0, 30, tzinfo=UTC)
WINDOW = {"since": "2025-03-01", "until": "2025-03-02"}


def add_call(
    tenant,
    at: datetime,
    *,
    stage: Stage | None = None,
    model: str = "gpt-4o-mini",
    prompt: int | None = 100,
    completion: int | None = 10,
    cached: int | None = 0,
    cost: str | None = "0.000100",
    **fields,
) -> LLMCall:
    call = LLMCall.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        stage=stage,
        purpose=fields.pop("purpose", LLMPurpose.RESPONSE),
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=cached,
        cost=Decimal(cost) if cost is not None else None,
        outcome=fields.pop("outcome", LLMOutcome.OK),
        **fields,
    )
    LLMCall.objects.filter(pk=call.pk).update(created_at=at)
    return call


def usage(client: APIClient, **params) -> dict:
    response = client.get(URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def figures(calls, prompt, completion, cached, cost, *, complete=True, unpriced=0) -> dict:
    return {
        "calls": calls,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cached_tokens": cached,
        "cost": cost,
        "cost_complete": complete,
        "unpriced_calls": unpriced,
    }


@pytest.fixture
def booking(alice) -> Stage:
    return Stage.objects.create(business=alice.business, key="booking", name="Booking", order=1)


@pytest.fixture
def ledger(alice, bob, booking):
    """Alice: three calls on March 1st (UTC), one just after midnight on the 2nd; Bob: the same days."""
    add_call(alice, MARCH_1, stage=booking, prompt=100, completion=10, cached=40, cost="0.000100")
    add_call(alice, MARCH_1_LATE, stage=alice.stage, prompt=200, completion=20, cost="0.000200")
    add_call(alice, MARCH_1_LATE, stage=None, model="gpt-4o", prompt=300, completion=30, cost="0.003000")
    add_call(alice, MARCH_2_EARLY, stage=booking, prompt=400, completion=40, cached=100, cost="0.000400")
    for at in (MARCH_1, MARCH_2_EARLY):
        add_call(bob, at, stage=bob.stage, model="gpt-4.1", prompt=9000, completion=900, cost="0.900000")


def test_usage_is_grouped_by_utc_day_stage_and_model(alice, booking, ledger):
    body = usage(alice.client(), group_by="day,stage,model", **WINDOW)

    assert body["since"] == "2025-03-01T00:00:00Z"
    assert body["until"] == "2025-03-03T00:00:00Z"  # a date as `until` includes that day
    assert body["dry_run_included"] is False
    assert body["totals"] == figures(4, 1000, 100, 140, "0.003700")
    assert body["by_day"] == [
        {"day": "2025-03-01", **figures(3, 600, 60, 40, "0.003300")},
        {"day": "2025-03-02", **figures(1, 400, 40, 100, "0.000400")},
    ]
    assert body["by_stage"] == [
        {
            "stage": str(booking.pk),
            "key": "booking",
            "name": "Booking",
            **figures(2, 500, 50, 140, "0.000500"),
        },
        {
            "stage": str(alice.stage.pk),
            "key": alice.stage.key,
            "name": alice.stage.name,
            **figures(1, 200, 20, 0, "0.000200"),
        },
        {"stage": None, "key": "none", "name": "No stage", **figures(1, 300, 30, 0, "0.003000")},
    ]
    assert body["by_model"] == [
        {"model": "gpt-4o-mini", **figures(3, 700, 70, 140, "0.000700")},
        {"model": "gpt-4o", **figures(1, 300, 30, 0, "0.003000")},
    ]


def test_only_the_requested_groupings_are_returned(alice, ledger):
    default = usage(alice.client(), **WINDOW)
    by_model = usage(alice.client(), group_by="model", **WINDOW)

    assert set(default) == {"since", "until", "dry_run_included", "totals", "by_day"}
    assert set(by_model) == {"since", "until", "dry_run_included", "totals", "by_model"}


def test_a_datetime_until_is_exclusive(alice, ledger):
    body = usage(alice.client(), since="2025-03-01T00:00:00Z", until="2025-03-02T00:30:00+00:00")

    assert body["until"] == "2025-03-02T00:30:00Z"
    assert body["totals"]["calls"] == 3
    assert [row["day"] for row in body["by_day"]] == ["2025-03-01"]


def test_a_naive_datetime_is_utc(alice, ledger):
    body = usage(alice.client(), since="2025-03-01T23:00:00", until="2025-03-02T01:00:00")

    assert body["since"] == "2025-03-01T23:00:00Z"
    assert body["totals"]["calls"] == 3


def test_bobs_calls_are_never_counted_for_alice_and_the_other_way_round(alice, bob, ledger):
    alice_body = usage(alice.client(), group_by="day,stage,model", **WINDOW)
    bob_body = usage(bob.client(), group_by="day,stage,model", **WINDOW)

    assert alice_body["totals"]["calls"] == 4
    assert "gpt-4.1" not in [row["model"] for row in alice_body["by_model"]]
    assert str(bob.stage.pk) not in [row["stage"] for row in alice_body["by_stage"]]
    assert bob_body["totals"] == figures(2, 18000, 1800, 0, "1.800000")
    assert [row["model"] for row in bob_body["by_model"]] == ["gpt-4.1"]
    assert [row["stage"] for row in bob_body["by_stage"]] == [str(bob.stage.pk)]


def test_a_call_without_a_price_leaves_the_known_costs_summed_and_flags_the_total(alice, ledger):
    add_call(alice, MARCH_1, model="local-llama", prompt=50, completion=5, cost=None)
    # A failed request reported no usage: it was not billed, so it does not make the cost unknown.
    add_call(alice, MARCH_1, prompt=None, completion=None, cached=None, cost=None, outcome=LLMOutcome.ERROR)

    body = usage(alice.client(), group_by="day,model", **WINDOW)

    assert body["totals"] == figures(6, 1050, 105, 140, "0.003700", complete=False, unpriced=1)
    march_1, march_2 = body["by_day"]
    assert (march_1["cost"], march_1["cost_complete"], march_1["unpriced_calls"]) == ("0.003300", False, 1)
    assert march_2["cost_complete"] is True
    by_model = {row["model"]: row for row in body["by_model"]}
    assert by_model["local-llama"] == {
        "model": "local-llama",
        **figures(1, 50, 5, 0, "0.000000", complete=False, unpriced=1),
    }
    assert by_model["gpt-4o-mini"]["calls"] == 4
    assert by_model["gpt-4o-mini"]["cost_complete"] is True


def test_dry_runs_are_left_out_unless_asked_for(alice, ledger):
    add_call(alice, MARCH_1, prompt=1000, completion=100, cost="0.010000", dry_run=True)

    real = usage(alice.client(), **WINDOW)
    with_dry = usage(alice.client(), dry_run="true", **WINDOW)

    assert real["totals"]["calls"] == 4
    assert with_dry["dry_run_included"] is True
    assert with_dry["totals"] == figures(5, 2000, 200, 140, "0.013700")


def test_the_default_period_is_the_last_thirty_days(alice):
    LLMCall.objects.filter(business=alice.business).delete()
    now = timezone.now()
    add_call(alice, now - timedelta(days=29), prompt=10, completion=1)
    add_call(alice, now - timedelta(days=31), prompt=1000, completion=100)

    body = usage(alice.client())

    assert body["totals"]["calls"] == 1
    assert body["totals"]["prompt_tokens"] == 10
    since = datetime.fromisoformat(body["since"].replace("Z", "+00:00"))
    until = datetime.fromisoformat(body["until"].replace("Z", "+00:00"))
    assert until - since == timedelta(days=30)
    assert abs((until - now).total_seconds()) < 60


def test_an_empty_period_answers_zeros(alice):
    body = usage(alice.client(), group_by="day,stage,model", **WINDOW)

    assert body["totals"] == figures(0, 0, 0, 0, "0.000000")
    assert body["by_day"] == body["by_stage"] == body["by_model"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "last week"}, "since"),
        ({"until": "2025-02-30"}, "until"),
        ({"until": "9999-12-31"}, "until"),
        ({"since": "2025-03-01T25:00:00"}, "since"),
        ({"group_by": "week"}, "group_by"),
        ({"group_by": "day,hour"}, "group_by"),
        ({"group_by": ","}, "group_by"),
        ({"dry_run": "maybe"}, "dry_run"),
        ({"since": "2025-03-05", "until": "2025-03-01"}, "since"),
        ({"since": "2025-03-01T10:00:00Z", "until": "2025-03-01T10:00:00Z"}, "since"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(alice, params, field):
    response = alice.client().get(URL, params)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]


def test_each_grouping_is_one_aggregate_query(alice, ledger):
    client = alice.client()
    with CaptureQueriesContext(connection) as queries:
        usage(client, group_by="day,stage,model", **WINDOW)

    ledger_queries = [q["sql"] for q in queries.captured_queries if "conversations_llmcall" in q["sql"]]
    # Totals, then one per grouping; each filtered on the business and the period.
    assert len(ledger_queries) == 4
    for sql in ledger_queries:
        assert "business_id" in sql and "created_at" in sql


def test_a_viewer_may_read_usage(alice, alice_viewer, ledger):
    client = APIClient()
    assert client.login(username="victor@example.com", password="pw-victor")

    assert usage(client, **WINDOW)["totals"]["calls"] == 4


def test_usage_needs_a_business_principal(alice, anon_client, master_client):
    assert anon_client.get(URL).status_code == 401
    assert master_client.get(URL).status_code == 403


def test_usage_is_read_only(alice):
    assert alice.client().post(URL, {}, format="json").status_code == 405


def test_the_openapi_schema_describes_usage(alice):
    response = APIClient().get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    operation = response.json()["paths"]["/api/v1/usage/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"since", "until", "group_by", "dry_run"}
    assert "200" in operation["responses"] and "400" in operation["responses"]
