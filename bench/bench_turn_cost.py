"""Benchmark 3, the cost of a turn: queries, prompt tokens and worker CPU, at 10, 100 and 1,000 messages.

In this process, on PostgreSQL, with the fake LLM (no delay): for each length,
conversations whose history has N-1 messages get one new customer message and
`conversation_turn_process` runs directly under CaptureQueriesContext. A turn
sends its reply inline (in the same process, right after its transaction
commits), so the turn's queries include the send's; the send's share is
counted separately too. A send through the task (a retry, a staff reply) is
measured on its own with `message_send`. Prompt tokens are those the LLM server
reported for the turn's calls (the ledger).

Worker CPU per turn: a child process (the worker's code only: the fake LLM and
Graph servers stay in this process) runs N turns of 100-message conversations
and reports its own CPU time (`time.process_time`) over them, after a few
warm-up turns; DEBUG is off there, so no query logging is counted. It runs
with the per-business turn config cache and without it (`TURN_CONFIG_CACHE_SECONDS=0`),
alternating, `--cpu-rounds` times each (the median run is the figure: the machine is
shared), so the cache's share is measured, not assumed.

`--profile` also writes pyinstrument profiles of the child's turns and of the
webhook view (in-process, Django test client) to bench/results/profile_*.txt.

    python -m bench.bench_turn_cost [--lengths 10,100,1000] [--repeat 3] [--cpu-turns 40]
        [--cpu-rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

from bench.loadgen import RESULTS_DIR, result_write, table_print
from bench.stack import ROOT, BenchTenant, bench_stack, sign, tenants_create, whatsapp_body

NAME = "turn_cost"
GOAL_QUERIES = 1.2
GOAL_TOKENS = 1.5
GOAL_QUERIES_PER_TURN = 12
GOAL_CPU_MS = 30.0
CPU_WARMUP_TURNS = 5
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


def _send_counted(counts: dict[str, int]):
    """Wrap `message_send` so the queries of the turn's inline send are counted apart."""
    from django.db import connection

    from conversations import outbound, tasks

    original = outbound.message_send

    def counted(*args: Any, **kwargs: Any) -> Any:
        before = len(connection.queries_log)
        try:
            return original(*args, **kwargs)
        finally:
            counts["send"] += len(connection.queries_log) - before

    # The turn's inline send calls it by its name in outbound; the task by its name in tasks.
    outbound.message_send = tasks.message_send = counted
    return lambda: setattr(outbound, "message_send", original) or setattr(tasks, "message_send", original)


def _measure_turn(conversation: Any) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from conversations.models import LLMCall
    from conversations.turns import conversation_turn_process

    counts = {"send": 0}
    restore = _send_counted(counts)
    try:
        with CaptureQueriesContext(connection) as turn_queries:
            outcome = conversation_turn_process(conversation_id=conversation.pk, wait_for_burst=False)
    finally:
        restore()
    calls = list(LLMCall.objects.filter(conversation=conversation).values("purpose", "prompt_tokens"))
    return {
        "status": outcome.status,
        "queries": len(turn_queries.captured_queries),
        "inline_send_queries": counts["send"],
        "llm_calls": len(calls),
        "prompt_tokens": sum(c["prompt_tokens"] or 0 for c in calls),
    }


def _measure_task_send(tenant: BenchTenant) -> int:
    """Queries of one send through the task (a retry or a staff reply): claim, read, mark."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from conversations.models import Author, Conversation
    from conversations.outbound import message_outbound_create, message_send

    conversation = Conversation.objects.filter(business_id=tenant.business_id).order_by("created_at").last()
    message = message_outbound_create(
        conversation=conversation, author=Author.STAFF, text="A staff reply", enqueue=False
    )
    with CaptureQueriesContext(connection) as queries:
        outcome = message_send(message_id=message.pk)
    assert outcome.status == "sent", outcome
    return len(queries.captured_queries)


def run(
    *, lengths: list[int], repeat: int, cpu_turns: int = 40, cpu_rounds: int = 3, profile: bool = False
) -> dict[str, Any]:
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
                    "queries": max(s["queries"] for s in samples),
                    "inline_send_queries": max(s["inline_send_queries"] for s in samples),
                    "llm_calls": statistics.median(s["llm_calls"] for s in samples),
                    "prompt_tokens": statistics.median(s["prompt_tokens"] for s in samples),
                    "statuses": sorted({s["status"] for s in samples}),
                }
            )
            print(f"  {length:5} messages: {rows[-1]}", flush=True)
        task_send_queries = _measure_task_send(tenant)
        cpu = _cpu_rounds(stack, tenant, turns=cpu_turns, rounds=cpu_rounds)
        print(f"  worker CPU per turn: {cpu}", flush=True)
        profiles = {}
        if profile:  # a run of its own: the profiler's overhead stays out of the CPU figures
            profiles["turn"] = _cpu_per_turn(stack, tenant, turns=20, cache=True, profile=True)["profile"]
            profiles["ingest"] = _profile_ingest(tenant)
        stack.queue_clear()  # anything a turn enqueued (no worker ran)

    first, last = rows[0], rows[-1]
    q_ratio = round(last["queries"] / first["queries"], 2) if first["queries"] else None
    t_ratio = round(last["prompt_tokens"] / first["prompt_tokens"], 2) if first["prompt_tokens"] else None
    label = f"{last['messages']}/{first['messages']}"
    most = max(r["queries"] for r in rows)
    cpu_ms = cpu["cached"]["cpu_ms_per_turn"]
    return {
        "name": NAME,
        "config": {
            "lengths": lengths,
            "repeat": repeat,
            "llm": "fake, no delay",
            "cpu_turns": cpu_turns,
            "cpu_rounds": cpu_rounds,
            "cpu_history": 100,
        },
        "rows": rows,
        "task_send_queries": task_send_queries,
        "cpu": cpu,
        "profiles": profiles,
        "summary": {
            "max_queries_per_turn": most,
            "cpu_ms_per_turn": cpu_ms,
            "cpu_ms_per_turn_uncached": cpu["uncached"]["cpu_ms_per_turn"],
            f"queries_ratio_{label}": q_ratio,
            f"prompt_tokens_ratio_{label}": t_ratio,
        },
        "goals": {
            f"queries per turn <= {GOAL_QUERIES_PER_TURN} at every length": most <= GOAL_QUERIES_PER_TURN,
            f"worker CPU per turn <= {GOAL_CPU_MS:.0f} ms": cpu_ms <= GOAL_CPU_MS,
            "queries flat (<= 1.2x)": q_ratio is not None and q_ratio <= GOAL_QUERIES,
            "prompt tokens flat (<= 1.5x)": t_ratio is not None and t_ratio <= GOAL_TOKENS,
        },
    }


# --- worker CPU: the turns run in a child process ---------------------------------------


def _cpu_rounds(stack: Any, tenant: BenchTenant, *, turns: int, rounds: int) -> dict[str, dict]:
    """`rounds` child runs with the cache and without, alternating; the median run of each.

    The machine is shared: one run can land on a busy second. The median of a few, each
    measured in the same minutes as the other mode, is the figure; every run is kept.
    """
    runs: dict[str, list[dict]] = {"cached": [], "uncached": []}
    for n in range(rounds):
        for mode in runs:
            runs[mode].append(_cpu_per_turn(stack, tenant, turns=turns, cache=mode == "cached", key=f"{n}"))
    result = {}
    for mode, samples in runs.items():
        ordered = sorted(samples, key=lambda r: r["cpu_ms_per_turn"])
        result[mode] = {
            **ordered[len(ordered) // 2],
            "runs_cpu_ms": [r["cpu_ms_per_turn"] for r in samples],
            "min_cpu_ms": ordered[0]["cpu_ms_per_turn"],
        }
    return result


def _cpu_per_turn(
    stack: Any, tenant: BenchTenant, *, turns: int, cache: bool, profile: bool = False, key: str = ""
) -> dict:
    """CPU of a process that only runs turns (see the module docstring)."""
    ids = [
        str(_conversation_with_history(tenant, length=100, key=f"cpu-{cache}-{profile}-{key}-{i}").pk)
        for i in range(turns + CPU_WARMUP_TURNS)
    ]
    command = [sys.executable, "-m", "bench.bench_turn_cost", "--cpu-child"]
    if not cache:
        command.append("--no-cache")
    if profile:
        command += ["--profile-out", str(RESULTS_DIR / "profile_turn.txt")]
    completed = subprocess.run(  # noqa: S603 (our own command line)
        command,
        input="\n".join(ids),
        env={**os.environ, **stack.env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the CPU child failed:\n{completed.stderr[-3000:]}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    if profile:
        result["profile"] = str((RESULTS_DIR / "profile_turn.txt").relative_to(RESULTS_DIR.parent.parent))
    return result


def _cpu_child(*, cache: bool, profile_out: str | None) -> None:
    """In the child: run the turns of the conversation ids on stdin, print CPU per turn as JSON."""
    import django

    django.setup()
    from django.conf import settings

    from conversations.turns import conversation_turn_process

    if not cache:
        settings.TURN_CONFIG_CACHE_SECONDS = 0
    ids = [line.strip() for line in sys.stdin if line.strip()]
    warmup, measured = ids[:CPU_WARMUP_TURNS], ids[CPU_WARMUP_TURNS:]
    for conversation_id in warmup:  # code loading, the connection pool, the cache
        conversation_turn_process(conversation_id=conversation_id, wait_for_burst=False)
    profiler = None
    if profile_out:
        from pyinstrument import Profiler
        from pyinstrument.stack_sampler import get_stack_sampler

        # Sample on the thread's CPU clock: the profile shows where the CPU goes, not the waits.
        get_stack_sampler().timer_func = time.thread_time
        profiler = Profiler(interval=0.0005)
        profiler.start()
    cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    statuses = [conversation_turn_process(conversation_id=c, wait_for_burst=False).status for c in measured]
    cpu, thread, wall = time.process_time() - cpu, time.thread_time() - thread, time.perf_counter() - wall
    if profiler is not None:
        profiler.stop()
        with open(profile_out, "w") as out:
            out.write(profiler.output_text(unicode=False, color=False, show_all=False))
    print(
        json.dumps(
            {
                "turns": len(measured),
                "cpu_ms_per_turn": round(cpu * 1000 / len(measured), 1),
                # The turn's own thread, without the heartbeat and typing-indicator threads.
                "turn_thread_ms_per_turn": round(thread * 1000 / len(measured), 1),
                "wall_ms_per_turn": round(wall * 1000 / len(measured), 1),
                "statuses": sorted(set(statuses)),
                "profiled": profiler is not None,
            }
        )
    )


def _profile_ingest(tenant: BenchTenant) -> str:
    """A pyinstrument text profile of 50 webhook POSTs (in-process, Django test client)."""
    from django.test import Client
    from pyinstrument import Profiler

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
    path = RESULTS_DIR / "profile_ingest.txt"
    path.write_text(profiler.output_text(unicode=False, color=False, show_all=False))
    return str(path.relative_to(RESULTS_DIR.parent.parent))


def report(result: dict[str, Any]) -> None:
    table_print(
        ["messages", "queries/turn", "of which the inline send", "LLM calls", "prompt tokens"],
        [
            [r["messages"], r["queries"], r["inline_send_queries"], r["llm_calls"], r["prompt_tokens"]]
            for r in result["rows"]
        ],
    )
    print(f"a send through the task: {result['task_send_queries']} queries")
    cpu = result["cpu"]
    table_print(
        [
            "worker CPU per turn",
            "median ms",
            "min ms",
            "runs",
            "turn thread ms",
            "wall ms",
            "turns",
            f"goal <= {GOAL_CPU_MS:.0f} ms",
        ],
        [
            [
                name,
                c["cpu_ms_per_turn"],
                c["min_cpu_ms"],
                " / ".join(str(v) for v in c["runs_cpu_ms"]),
                c["turn_thread_ms_per_turn"],
                c["wall_ms_per_turn"],
                c["turns"],
                c["cpu_ms_per_turn"] <= GOAL_CPU_MS,
            ]
            for name, c in cpu.items()
        ],
    )
    print(result["summary"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu-turns", type=int, default=40)
    parser.add_argument("--cpu-rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cpu-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_child:
        _cpu_child(cache=not args.no_cache, profile_out=args.profile_out)
        return
    result = run(
        lengths=[int(n) for n in args.lengths.split(",")],
        repeat=args.repeat,
        cpu_turns=args.cpu_turns,
        cpu_rounds=args.cpu_rounds,
        profile=args.profile,
    )
    report(result)
    result_write(NAME, result)


if __name__ == "__main__":
    main()
