"""Benchmark 6, a crash in the busy hour: the worker is SIGKILLed while customers wait.

The production set-up (gunicorn, the threads worker, Celery beat running the sweeper,
PostgreSQL, Redis) with the fake LLM answering after L (1 s). N customers of one business
(100) each write one message, all posted at once; K seconds (8) after the first post the
worker's process group is SIGKILLed and a new worker started at once. Measured: how many
turns were in flight at the kill, how many customers were answered and how many twice
(replies per customer at the fake Graph API), the time from the kill to the last reply,
and the webhook→reply wait p50/p99.

The same crash runs twice in one invocation: first with the recovery settings the project
had before (lease 600 s, sweeper stuck after 120 s and run every 60 s, visibility timeout
3600 s), capped at `--cap` seconds after the kill, then with the defaults.

    python -m bench.bench_crash [--customers 100] [--llm-delay 1.0] [--kill-at 8] [--cap 240]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import tempfile
import threading
import time
from typing import Any

from bench.bench_burst import _post_all
from bench.loadgen import median, percentile, result_write, table_print
from bench.stack import PYTHON, bench_stack, tenants_create, whatsapp_body

NAME = "crash"
GOAL_SECONDS = 120.0
# What the project ran before the lease heartbeat, the 15 s sweeper and the short visibility timeout.
BEFORE = {
    "TURN_LEASE_SECONDS": "600",
    "SWEEPER_STUCK_AFTER_SECONDS": "120",
    "SWEEPER_INTERVAL_SECONDS": "60",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "3600",
}


def _beat_start(stack, directory: str) -> None:
    """Celery beat as in production (the sweeper every SWEEPER_INTERVAL_SECONDS)."""
    args = [PYTHON, "-m", "celery", "-A", "icmp", "beat", "--loglevel=WARNING"]
    args += ["-s", os.path.join(directory, "schedule"), f"--pidfile={os.path.join(directory, 'beat.pid')}"]
    stack._spawn("beat", args, stack.env)


def _broker_clear(stack) -> None:
    """The queue and the unacknowledged set: an earlier case's tasks must not come back here."""
    import redis

    redis.Redis.from_url(stack.env["REDIS_URL"]).delete("celery", "unacked", "unacked_index")


def in_flight() -> dict[str, int]:
    """Turns holding a live lease and customer messages being processed, from the database."""
    from django.utils import timezone

    from conversations.models import Conversation, Direction, Message, MessageStatus

    leases = Conversation.objects.filter(turn_lease_until__gt=timezone.now()).count()
    processing = Message.objects.filter(direction=Direction.IN, status=MessageStatus.PROCESSING).count()
    return {"live_leases": leases, "processing": processing}


def _replies(stack, recipients: list[str]) -> dict[str, list[float]]:
    with stack.graph._arrived:
        return {r: list(stack.graph.sends.get(r, [])) for r in recipients}


def crash(
    stack, tenant, *, customers: int, kill_at: float, cap: float, watch: float, concurrency: int
) -> dict[str, Any]:
    recipients = [f"4470{n:07d}" for n in range(customers)]
    bodies = [
        whatsapp_body(tenant.phone_number_id, [(wa_id, f"wamid.crash.{wa_id}", "A table for two tonight?")])
        for wa_id in recipients
    ]
    accepted: list[float] = []
    poster = threading.Thread(
        target=lambda: accepted.extend(asyncio.run(_post_all(stack.web_url, bodies))), daemon=True
    )
    started = time.monotonic()
    poster.start()
    time.sleep(max(0.0, started + kill_at - time.monotonic()))
    at_kill = in_flight()
    at_kill["answered"] = sum(1 for sends in _replies(stack, recipients).values() if sends)
    worker = stack._processes.pop("worker")
    os.killpg(worker.pid, signal.SIGKILL)
    killed = time.monotonic()
    worker.wait(timeout=10)
    stack.worker_start(concurrency=concurrency, pool="threads")
    restarted = time.monotonic() - killed
    poster.join(timeout=120)

    # Every customer answered, or the cap; then keep counting replies for `watch` s after
    # the kill, long enough for a dead worker's tasks to come back and run a second time.
    deadline = killed + cap
    while time.monotonic() < deadline:
        replies = _replies(stack, recipients)
        if all(replies.values()) and time.monotonic() >= killed + watch:
            break
        time.sleep(0.2)
    watched = time.monotonic() - killed
    replies = _replies(stack, recipients)
    firsts = {r: sends[0] for r, sends in replies.items() if sends}
    # A customer still unanswered waited longer than the run watched: infinite here.
    waits = [firsts[r] - accepted[i] if r in firsts else math.inf for i, r in enumerate(recipients)]
    last = max(firsts.values(), default=None)
    answered = len(firsts)
    waited = round(time.monotonic() - started, 1)
    return {
        "customers": customers,
        "in_flight_at_kill": at_kill,
        "worker_restart_s": round(restarted, 1),
        "answered": answered,
        "answered_twice": sum(1 for sends in replies.values() if len(sends) > 1),
        "kill_to_last_reply_s": round(last - killed, 1) if last and answered == customers else None,
        "wait_p50_s": _seconds(median(waits), waited),
        "wait_p99_s": _seconds(percentile(waits, 0.99), waited),
        "watched_s_after_kill": round(watched, 1),
    }


def _seconds(value: float | None, waited: float) -> float | str | None:
    """Rounded seconds, or "> N" for a customer not answered while the run watched (N s)."""
    if value is None:
        return None
    return f"> {waited:.0f}" if math.isinf(value) else round(value, 1)


def run_case(label: str, extra: dict[str, str], args: argparse.Namespace, *, cap: float) -> dict[str, Any]:
    # The folder outlives the stack, whose exit stops beat (which writes its schedule there).
    with tempfile.TemporaryDirectory() as directory, bench_stack(llm_delay=args.llm_delay) as stack:
        stack.env.update(extra)
        # The killed worker resets its connections mid-request: no traceback per request.
        stack.llm._server.handle_error = lambda request, client_address: None
        _broker_clear(stack)
        (tenant,) = tenants_create(1, burst_window=args.burst_window, prefix=f"Crash {label}")
        stack.web_start(workers=4)
        stack.worker_start(concurrency=args.concurrency, pool="threads")
        _beat_start(stack, directory)
        # Warm up: load code, fill the connection pools.
        warm = [f"4471{n:07d}" for n in range(3)]
        asyncio.run(
            _post_all(
                stack.web_url,
                [whatsapp_body(tenant.phone_number_id, [(w, f"wamid.warm.{w}", "Hi")]) for w in warm],
            )
        )
        for recipient in warm:
            stack.graph.wait_for_send(recipient, timeout=60)
        watch = args.watch if args.watch is not None else _visibility_timeout(extra) + 30
        result = crash(
            stack,
            tenant,
            customers=args.customers,
            kill_at=args.kill_at,
            cap=cap,
            watch=min(watch, cap),
            concurrency=args.concurrency,
        )
    settings = {key: int(value) for key, value in extra.items()} or "defaults"
    return {"label": label, "settings": settings, **result}


def _visibility_timeout(extra: dict[str, str]) -> float:
    from django.conf import settings

    return float(extra.get("BROKER_VISIBILITY_TIMEOUT_SECONDS", settings.BROKER_VISIBILITY_TIMEOUT_SECONDS))


def _met(case: dict[str, Any]) -> bool:
    return (
        case["answered"] == case["customers"]
        and case["answered_twice"] == 0
        and case["kill_to_last_reply_s"] is not None
        and case["kill_to_last_reply_s"] <= GOAL_SECONDS
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = []
    if not args.no_baseline:
        cases.append(run_case("before", BEFORE, args, cap=args.cap))
    candidate = run_case("now", {}, args, cap=args.cap)
    cases.append(candidate)
    result: dict[str, Any] = {
        "name": NAME,
        "config": {
            "customers": args.customers,
            "llm_delay_s": args.llm_delay,
            "kill_at_s": args.kill_at,
            "burst_window_s": args.burst_window,
            "concurrency": args.concurrency,
            "cap_s": args.cap,
            "cores": os.cpu_count(),
        },
        "cases": cases,
        "goals": {
            f"every customer answered exactly once within {GOAL_SECONDS:.0f} s of the kill": _met(candidate)
        },
        "summary": {
            "in_flight_at_kill": candidate["in_flight_at_kill"]["live_leases"],
            "answered": candidate["answered"],
            "answered_twice": candidate["answered_twice"],
            "kill_to_last_reply_s": candidate["kill_to_last_reply_s"],
        },
    }
    if not args.no_baseline:
        before = cases[0]
        result["before_answered_by_cap"] = before["answered"]
        result.update(_ratios(before, candidate))
    return result


def _ratios(before: dict[str, Any], now: dict[str, Any]) -> dict[str, str]:
    """Before over now; a bound ("> x") where the baseline had not answered everyone by its cap."""
    ratios = {}
    pairs = {
        "kill_to_last_reply": (before["kill_to_last_reply_s"], now["kill_to_last_reply_s"]),
        "wait_p50": (before["wait_p50_s"], now["wait_p50_s"]),
        "wait_p99": (before["wait_p99_s"], now["wait_p99_s"]),
    }
    for name, (old, new) in pairs.items():
        if not isinstance(new, float) or not new:
            continue
        if old is None:  # not everyone answered before the cap
            old = f"> {before['watched_s_after_kill']}"
        if isinstance(old, str):
            ratios[f"{name}_ratio"] = f"> {float(old[2:]) / new:.1f}"
        else:
            ratios[f"{name}_ratio"] = f"{old / new:.1f}"
    return ratios


def report(result: dict[str, Any]) -> None:
    rows = []
    for case in result["cases"]:
        flight = case["in_flight_at_kill"]
        rows.append(
            [
                case["label"],
                f"{flight['live_leases']} / {flight['processing']} / {flight['answered']}",
                f"{case['answered']} / {case['customers']}",
                case["answered_twice"],
                case["kill_to_last_reply_s"] if case["kill_to_last_reply_s"] is not None else "-",
                case["wait_p50_s"],
                case["wait_p99_s"],
                case["watched_s_after_kill"],
            ]
        )
    table_print(
        [
            "settings",
            "at kill: leases / processing / answered",
            "answered",
            "twice",
            "kill→last reply s",
            "wait p50 s",
            "wait p99 s",
            "watched s",
        ],
        rows,
    )
    if "before_answered_by_cap" in result:
        cap = result["config"]["cap_s"]
        print(f"before: {result['before_answered_by_cap']} answered within {cap:.0f} s of the kill")
    for key in ("kill_to_last_reply_ratio", "wait_p50_ratio", "wait_p99_ratio"):
        if key in result:
            print(f"{key[: -len('_ratio')].replace('_', ' ')}, before over now: {result[key]}")
    for goal, met in result["goals"].items():
        print(f"{'met' if met else 'NOT MET'}: {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--llm-delay", type=float, default=1.0)
    parser.add_argument("--kill-at", type=float, default=8.0, help="seconds after the first post")
    parser.add_argument("--cap", type=float, default=240.0, help="seconds after the kill to wait at most")
    parser.add_argument(
        "--watch",
        type=float,
        default=None,
        help="count replies at least this long after the kill (default: the visibility timeout + 30 s)",
    )
    parser.add_argument("--burst-window", type=int, default=3, help="the business's (default: the product's)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-baseline", action="store_true", help="Only the current settings.")
    args = parser.parse_args()
    result = run(args)
    report(result)
    result_write(NAME, result)


if __name__ == "__main__":
    main()
