"""Benchmark 3, flat per-turn cost: queries and prompt tokens at 10, 100 and 1,000 messages.

In this process, on PostgreSQL, with the fake LLM (no delay): for each length,
conversations whose history has N-1 messages get one new customer message and
`conversation_turn_process` runs directly under CaptureQueriesContext. The
reply's send runs in a task (not counted here); its queries are measured
separately with `message_send`. Prompt tokens are those the LLM server
reported for the turn's calls (the ledger).

`--profile` also writes pyinstrument profiles of a turn and of the webhook
view (in-process, Django test client) to bench/results/profile_*.txt.

    python -m bench.bench_turn_cost [--lengths 10,100,1000] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
from datetime import timedelta
from typing import Any

from bench.loadgen import RESULTS_DIR, result_write, table_print
from bench.stack import BenchTenant, bench_stack, sign, tenants_create, whatsapp_body

NAME = "turn_cost"
GOAL_QUERIES = 1.2
GOAL_TOKENS = 1.5
CUSTOMER_TEXTS = (
    "Hi, I'd like to book a table for four on Friday evening, around eight if possible.",
    "Do you have vegetarian options? Two of us don't eat meat.",
    "Great, and is there parking nearby or should we take a taxi?",
)
AI_TEXTS = (
    "Of course! Friday at 8 pm for four people works. May I have a name for the booking?",
    "Yes, we have several vegetarian dishes, including a mushroom risotto and a seasonal curry.",
)


def _conversation_with_history(tenant: BenchTenant, *, length: int, key: str) -> Any:
    """A conversation with `length - 1` answered messages and one new customer message; returns it."""
    from django.utils import timezone

    from businesses.models import Business
    from conversations.models import (
        Author,
        Contact,
        Conversation,
        Direction,
        Message,
        MessageStatus,
    )
    from stages.selectors import stage_initial_get

    business = Business.objects.get(pk=tenant.business_id)
    contact = Contact.objects.create(
        business=business, channel_account_id=tenant.account_id, external_id=f"cost-{key}", name="Ana"
    )
    start = timezone.now() - timedelta(hours=2)
    conversation = Conversation.objects.create(
        business=business,
        contact=contact,
        channel_account_id=tenant.account_id,
        stage=stage_initial_get(business=business),
        last_inbound_at=timezone.now(),
    )
    rows = []
    for i in range(length - 1):
        inbound = i % 2 == 0
        rows.append(
            Message(
                business=business,
                conversation=conversation,
                channel_account_id=tenant.account_id,
                direction=Direction.IN if inbound else Direction.OUT,
                author=Author.CUSTOMER if inbound else Author.AI,
                text=(CUSTOMER_TEXTS if inbound else AI_TEXTS)[i % 3 if inbound else i % 2],
                status=MessageStatus.ANSWERED if inbound else MessageStatus.SENT,
                external_id=f"wamid.cost.{key}.{i}",
            )
        )
    Message.objects.bulk_create(rows, batch_size=500)
    # auto_now_add overrides created_at on insert: move the history back (ids keep its order).
    Message.objects.filter(conversation=conversation).update(created_at=start)
    Message.objects.create(
        business=business,
        conversation=conversation,
        channel_account_id=tenant.account_id,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text="And can we bring a birthday cake?",
        status=MessageStatus.RECEIVED,
        external_id=f"wamid.cost.{key}.new",
    )
    return conversation


def _measure_turn(conversation: Any) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from conversations.models import Direction, LLMCall, Message
    from conversations.outbound import message_send
    from conversations.turns import conversation_turn_process

    with CaptureQueriesContext(connection) as turn_queries:
        outcome = conversation_turn_process(conversation_id=conversation.pk, wait_for_burst=False)
    calls = list(LLMCall.objects.filter(conversation=conversation).values("purpose", "prompt_tokens"))
    reply = Message.objects.filter(conversation=conversation, direction=Direction.OUT).order_by("-created_at")
    reply_id = reply.values_list("pk", flat=True).first()
    send_count = None
    if reply_id is not None:
        with CaptureQueriesContext(connection) as send_queries:
            message_send(message_id=reply_id)
        send_count = len(send_queries.captured_queries)
    return {
        "status": outcome.status,
        "queries": len(turn_queries.captured_queries),
        "send_queries": send_count,
        "llm_calls": len(calls),
        "prompt_tokens": sum(c["prompt_tokens"] or 0 for c in calls),
    }


def run(*, lengths: list[int], repeat: int, profile: bool = False) -> dict[str, Any]:
    with bench_stack() as stack:
        tenant = tenants_create(1)[0]
        _measure_turn(_conversation_with_history(tenant, length=3, key="warm"))
        rows = []
        for length in lengths:
            samples = [
                _measure_turn(_conversation_with_history(tenant, length=length, key=f"{length}-{r}"))
                for r in range(repeat)
            ]
            rows.append(
                {
                    "messages": length,
                    "queries": statistics.median(s["queries"] for s in samples),
                    "send_queries": statistics.median(s["send_queries"] or 0 for s in samples),
                    "llm_calls": statistics.median(s["llm_calls"] for s in samples),
                    "prompt_tokens": statistics.median(s["prompt_tokens"] for s in samples),
                    "statuses": sorted({s["status"] for s in samples}),
                }
            )
            print(f"  {length:5} messages: {rows[-1]}", flush=True)
        profiles = _profile(tenant) if profile else {}
        stack.queue_clear()  # the sends enqueued by the turns (no worker ran)

    first, last = rows[0], rows[-1]
    q_ratio = round(last["queries"] / first["queries"], 2) if first["queries"] else None
    t_ratio = round(last["prompt_tokens"] / first["prompt_tokens"], 2) if first["prompt_tokens"] else None
    label = f"{last['messages']}/{first['messages']}"
    return {
        "name": NAME,
        "config": {"lengths": lengths, "repeat": repeat, "llm": "fake, no delay"},
        "rows": rows,
        "profiles": profiles,
        "summary": {f"queries_ratio_{label}": q_ratio, f"prompt_tokens_ratio_{label}": t_ratio},
        "goals": {
            "queries flat (<= 1.2x)": q_ratio is not None and q_ratio <= GOAL_QUERIES,
            "prompt tokens flat (<= 1.5x)": t_ratio is not None and t_ratio <= GOAL_TOKENS,
        },
    }


def _profile(tenant: BenchTenant) -> dict[str, str]:
    """pyinstrument text profiles of 20 turns (100-message history) and 50 webhook POSTs."""
    from django.test import Client
    from pyinstrument import Profiler

    paths = {}
    conversations = [_conversation_with_history(tenant, length=100, key=f"prof-{i}") for i in range(20)]
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for conversation in conversations:
        _measure_turn(conversation)
    profiler.stop()
    paths["turn"] = _profile_write("turn", profiler)

    client = Client()
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for i in range(50):
        body = whatsapp_body(tenant.phone_number_id, [(f"4478{i % 10:08d}", f"wamid.prof.{i}", "Hello!")])
        client.post(
            "/webhooks/whatsapp/",
            data=body,
            content_type="application/json",
            headers={"X-Hub-Signature-256": sign(body)},
            SERVER_NAME="localhost",
        )
    profiler.stop()
    paths["ingest"] = _profile_write("ingest", profiler)
    return paths


def _profile_write(name: str, profiler: Any) -> str:
    path = RESULTS_DIR / f"profile_{name}.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return str(path.relative_to(RESULTS_DIR.parent.parent))


def report(result: dict[str, Any]) -> None:
    table_print(
        ["messages", "queries/turn", "send queries", "LLM calls", "prompt tokens"],
        [
            [r["messages"], r["queries"], r["send_queries"], r["llm_calls"], r["prompt_tokens"]]
            for r in result["rows"]
        ],
    )
    print(result["summary"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    result = run(lengths=[int(n) for n in args.lengths.split(",")], repeat=args.repeat, profile=args.profile)
    report(result)
    result_write(NAME, result)


if __name__ == "__main__":
    main()
