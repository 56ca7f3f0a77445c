"""The fault-injection script's own logic: its webhooks are real, and its verdict can fail.

The scenario itself (`python -m bench.chaos`, minutes, its own Redis and
PostgreSQL) is not part of the suite; these check the parts it trusts.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from bench.chaos_fakes import pending_tokens
from bench.chaos_invariants import Facts, evaluate, reason_group
from bench.chaos_plan import kill_schedule, plan_deliveries, sign, tokens_in, trigger_in, whatsapp_body
from channels_app.adapters.whatsapp import WhatsAppAdapter

SECRET = "smoke-app-secret"


def _clean_facts() -> Facts:
    return Facts(
        wamids_sent={"w1", "w2", "w3"},
        wamids_acked={"w1", "w2", "w3"},
        inbound=[
            ("w1", "answered", ""),
            ("w2", "answered", ""),
            ("w3", "failed", "LLM unavailable: timed out"),
        ],
        outbound=[
            ("o1", "ai", "sent", "", "Thanks, noted: c1m1 c1m2 [re c1m2]"),
            ("o2", "system", "failed", "Retrying in 4 s: rate limit", "A person will answer shortly."),
        ],
        graph_accepted={"o1": 1},
        graph_attempts={"o1": 1, "o2": 6},
        wamid_tokens={"w1": "c1m1", "w2": "c1m2", "w3": "c2m3"},
    )


def test_the_plan_is_deterministic_steady_and_duplicates_about_a_fifth():
    plan = plan_deliveries(messages=1000, contacts=50, rate=10, seed=3)

    assert plan == plan_deliveries(messages=1000, contacts=50, rate=10, seed=3)
    assert len({d.wamid for d in plan}) == 1000
    assert [d.at for d in plan[:3]] == [0.0, 0.1, 0.2]
    kinds = Counter(d.duplicate for d in plan)
    assert 150 <= kinds["concurrent"] + kinds["later"] <= 250
    assert kinds["concurrent"] > 50 and kinds["later"] > 50
    assert all(0.5 <= d.again_after <= 10 for d in plan if d.duplicate == "later")
    assert all(tokens_in(d.text) == [f"c{d.contact}m{d.seq}"] for d in plan)


def test_a_wave_adds_that_many_customers_writing_at_once_after_the_steady_plan():
    steady = plan_deliveries(messages=300, contacts=100, rate=10, seed=3)
    plan = plan_deliveries(messages=300, contacts=100, rate=10, seed=3, waves=[(12.5, 80)])

    assert plan[:300] == steady
    wave = plan[300:]
    assert len(wave) == 80 and {d.at for d in wave} == {12.5}
    assert len({d.contact for d in wave}) == 80  # one message from each of 80 customers
    assert [d.seq for d in wave] == list(range(300, 380))
    assert len({d.wamid for d in plan}) == 380
    assert all(tokens_in(d.text) == [f"c{d.contact}m{d.seq}"] and d.duplicate is None for d in wave)


def test_a_planned_body_is_one_whatsapp_text_message_with_a_signature_the_webhook_accepts():
    adapter = WhatsAppAdapter()
    delivery = plan_deliveries(messages=1, contacts=1, rate=1, seed=9)[0]
    body = whatsapp_body(phone_number_id="1555000SMOKE", delivery=delivery, timestamp=1_700_000_000)

    batch = adapter.parse(json.loads(body))

    assert batch.problems == [] and len(batch.messages) == 1
    message = batch.messages[0]
    assert (message.routing_id, message.external_id, message.text) == (
        "1555000SMOKE",
        delivery.wamid,
        delivery.text,
    )
    assert adapter.verify_signature(body, sign(body, SECRET), SECRET)
    assert not adapter.verify_signature(body, sign(body, "another-secret"), SECRET)


def test_the_fake_llm_echoes_only_what_follows_the_last_assistant_message():
    body = {
        "messages": [
            {"role": "system", "content": "You are c9m9 the bot"},
            {"role": "user", "content": "question c1m1"},
            {"role": "assistant", "content": "Thanks, noted: c1m1 [re c1m1]"},
            {"role": "user", "content": "question c1m4"},
            {"role": "user", "content": "question c1m7"},
        ]
    }

    assert pending_tokens(body) == ["c1m4", "c1m7"]
    assert trigger_in("Thanks, noted: c1m4 c1m7 [re c1m7]") == "c1m7"
    assert trigger_in("A person will answer shortly.") is None


def test_clean_facts_hold_every_invariant():
    counts, violations = evaluate(_clean_facts())

    assert violations == []
    assert counts["inbound_by_status"] == {"answered": 2, "failed": 1}
    assert counts["max_sends_per_message"] == 1
    assert counts["inbound_failed_reasons"] == {"LLM unavailable: timed out": 1}


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda f: f.graph_accepted.update(o1=2), "sent more than once"),
        (lambda f: f.inbound.append(("w1", "answered", "")), "stored more than once"),
        (lambda f: f.inbound.__setitem__(1, ("w2", "processing", "")), "left unfinished"),
        (lambda f: f.inbound.__setitem__(2, ("w3", "skipped", "")), "without a reason"),
        (lambda f: f.inbound.pop(), "not stored"),
        (lambda f: f.wamids_acked.discard("w3"), "never acknowledged"),
        (lambda f: f.outbound.append(("o3", "ai", "sent", "", "again [re c1m2]")), "more than one AI reply"),
        (lambda f: f.outbound.append(("o4", "ai", "sent", "", "Hi")), "never reached the Graph API"),
        (lambda f: f.outbound.append(("o5", "ai", "queued", "", "Hi")), "left queued/sending"),
        (lambda f: f.outbound.__setitem__(0, ("o1", "ai", "sent", "", "Hello")), "without an AI reply"),
    ],
)
def test_each_broken_invariant_is_reported(break_it, expected):
    facts = _clean_facts()
    break_it(facts)

    _, violations = evaluate(facts)

    assert any(expected in v for v in violations), violations


def test_kills_are_spread_over_the_run_and_reasons_are_grouped_without_their_numbers():
    moments = kill_schedule(duration=200, kills=6, seed=1)

    assert len(moments) == 6 and moments == sorted(moments)
    assert all(0 < t < 200 for t in moments)
    assert min(b - a for a, b in itertools.pairwise(moments)) > 4
    assert reason_group("Retrying in 16 s: (#130429) Rate limit") == reason_group(
        "Retrying in 4 s: (#130429) Rate limit"
    )
