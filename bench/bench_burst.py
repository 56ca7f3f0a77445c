"""Benchmark 5, a busy hour: many customers write at once and the LLM takes L to answer.

The production set-up (gunicorn, a Celery worker, PostgreSQL, Redis) with the fake
LLM answering after L (1 s by default). Two bursts, each message from a new
customer, all posted at once: N customers of one business, then 20 businesses
with N/20 customers each. Measured per burst:

- drain time (first post → last reply at the fake Graph API), turns/s, and the
  webhook→reply latency p50/p99 (per business too, for fairness);
- CPU seconds per answered message of the web processes, the worker and
  PostgreSQL, and the machine's CPU utilisation during the drain;
- the CPU-bound limit (cores ÷ CPU per message) and the worker's peak memory.

The same bursts run twice in one invocation: first on the baseline worker (the
prefork pool with 4 processes, what the project ran before), then on the
production worker (the threads pool), so the figures are ratios measured on the
same machine at the same time.

    python -m bench.bench_burst [--customers 200] [--llm-delay 1.0] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from bench.loadgen import HttpRequest, http_call, median, percentile, result_write, table_print
from bench.procfs import group_rss_mb, machine_cpu, postgres_cpu_seconds
from bench.stack import bench_stack, sign, tenants_create, whatsapp_body

NAME = "burst"
BUSINESSES = 20
POSTS_AT_ONCE = 64  # connections the load generator opens at a time (Meta opens many)
BURST_PREFIX = {"warmup": "1", "one": "2", "many": "3"}


class PeakMemory:
    """The worker group's largest resident size while the burst drains, sampled every 0.25 s."""

    def __init__(self, pgid: int) -> None:
        self.pgid, self.peak_mb = pgid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak_mb = max(self.peak_mb, group_rss_mb(self.pgid))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


# --- one burst ---------------------------------------------------------------------------


async def _post_all(url: str, bodies: list[bytes]) -> list[float]:
    """Post every body at once (at most POSTS_AT_ONCE in flight); when each got its 200."""
    parts = urlsplit(url)
    gate = asyncio.Semaphore(POSTS_AT_ONCE)
    accepted = [0.0] * len(bodies)

    async def post(index: int, body: bytes) -> None:
        request = HttpRequest(
            path="/webhooks/whatsapp/", body=body, headers={"X-Hub-Signature-256": sign(body)}
        )
        for _ in range(5):  # Meta retries a delivery that did not get its 200
            async with gate:
                try:
                    status, _ = await http_call(parts.hostname, parts.port, request, timeout=30)
                except (OSError, TimeoutError):
                    status = 0
            if status == 200:
                accepted[index] = time.monotonic()
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"webhook {index} never got a 200")

    await asyncio.gather(*(post(i, body) for i, body in enumerate(bodies)))
    return accepted


def _drain(stack, recipients: list[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    replied: dict[str, float] = {}
    while len(replied) < len(recipients) and time.monotonic() < deadline:
        with stack.graph._arrived:
            for recipient in recipients:
                if recipient not in replied and stack.graph.sends.get(recipient):
                    replied[recipient] = stack.graph.sends[recipient][0]
        time.sleep(0.1)
    return replied


def burst(stack, tenants: list, per_tenant: int, label: str) -> dict[str, Any]:
    prefix = BURST_PREFIX[label]  # every burst writes from new numbers
    # Interleaved, as a wave of replies from many businesses' customers arrives.
    customers = [
        (tenant, f"44{prefix}{t:02d}{n:06d}") for n in range(per_tenant) for t, tenant in enumerate(tenants)
    ]
    bodies = [
        whatsapp_body(
            tenant.phone_number_id, [(wa_id, f"wamid.{label}.{wa_id}", "Do you have a table for two?")]
        )
        for tenant, wa_id in customers
    ]
    cpu = {name: stack.cpu_seconds(name) for name in ("web", "worker")}
    pg_before, (busy_before, total_before) = postgres_cpu_seconds(), machine_cpu()
    started = time.monotonic()
    with PeakMemory(stack._processes["worker"].pid) as memory:
        accepted = asyncio.run(_post_all(stack.web_url, bodies))
        replied = _drain(stack, [wa_id for _, wa_id in customers], timeout=600)
    finished = max(replied.values(), default=time.monotonic())
    busy_after, total_after = machine_cpu()
    answered = len(replied)
    cpu = {name: stack.cpu_seconds(name) - cpu[name] for name in cpu}
    cpu["postgres"] = postgres_cpu_seconds() - pg_before
    latencies = {
        wa_id: (replied[wa_id] - accepted[i]) * 1000
        for i, (_, wa_id) in enumerate(customers)
        if wa_id in replied
    }
    per_business: dict[str, list[float]] = {}
    for tenant, wa_id in customers:
        if wa_id in latencies:
            per_business.setdefault(tenant.phone_number_id, []).append(latencies[wa_id])
    business_p50 = [median(values) for values in per_business.values()]
    drain = finished - started
    cpu_per_message = sum(cpu.values()) / answered if answered else None
    cores = os.cpu_count() or 1
    return {
        "customers": len(customers),
        "businesses": len(tenants),
        "answered": answered,
        "drain_s": round(drain, 2),
        "turns_per_s": round(answered / drain, 2) if drain > 0 else None,
        "p50_ms": round(median(list(latencies.values())) or 0, 1),
        "p99_ms": round(percentile(list(latencies.values()), 0.99) or 0, 1),
        "business_p50_max_over_min": (
            round(max(business_p50) / min(business_p50), 2)
            if len(business_p50) > 1 and min(business_p50)
            else None
        ),
        "cpu_ms_per_message": {k: round(v * 1000 / answered, 1) for k, v in cpu.items()} if answered else {},
        "machine_cpu_busy": round((busy_after - busy_before) / max(1, total_after - total_before), 3),
        "cpu_bound_turns_per_s": round(cores / cpu_per_message, 1) if cpu_per_message else None,
        "worker_peak_rss_mb": round(memory.peak_mb, 1),
    }


def run_worker(*, pool: str, concurrency: int, customers: int, llm_delay: float) -> dict[str, Any]:
    with bench_stack(llm_delay=llm_delay) as stack:
        tenants = tenants_create(BUSINESSES, burst_window=0)
        stack.web_start(workers=4)
        stack.worker_start(concurrency=concurrency, pool=pool)
        burst(stack, tenants[:1], 3, "warmup")  # load code, fill connection pools
        one = burst(stack, tenants[:1], customers, "one")
        many = burst(stack, tenants, max(1, customers // BUSINESSES), "many")
    return {"pool": pool, "concurrency": concurrency, "one_business": one, "many_businesses": many}


def _goals(result: dict[str, Any]) -> dict[str, bool]:
    one, many = result["one_business"], result["many_businesses"]
    limit = one["cpu_bound_turns_per_s"]
    fairness = many["business_p50_max_over_min"]
    return {
        "machine CPU >= 70 % busy while draining": one["machine_cpu_busy"] >= 0.7,
        "turns/s >= 0.6 x the CPU-bound limit": bool(limit) and one["turns_per_s"] >= 0.6 * limit,
        "20 x 10: no business's p50 > 2 x another's": fairness is not None and fairness <= 2.0,
        "worker memory <= 1 GB": one["worker_peak_rss_mb"] <= 1024,
        "every customer answered": one["answered"] == one["customers"]
        and many["answered"] == many["customers"],
    }


def run(*, customers: int, llm_delay: float, concurrency: int, baseline: bool = True) -> dict[str, Any]:
    workers = []
    if baseline:
        workers.append(run_worker(pool="prefork", concurrency=4, customers=customers, llm_delay=llm_delay))
    candidate = run_worker(pool="threads", concurrency=concurrency, customers=customers, llm_delay=llm_delay)
    workers.append(candidate)
    result: dict[str, Any] = {
        "name": NAME,
        "config": {"customers": customers, "llm_delay_s": llm_delay, "cores": os.cpu_count()},
        "workers": workers,
        "goals": _goals(candidate),
    }
    if baseline:
        before = workers[0]["one_business"]["turns_per_s"]
        result["turns_per_s_ratio"] = (
            round(candidate["one_business"]["turns_per_s"] / before, 2) if before else None
        )
    return result


def report(result: dict[str, Any]) -> None:
    rows = []
    for worker in result["workers"]:
        for label in ("one_business", "many_businesses"):
            b = worker[label]
            rows.append(
                [
                    f"{worker['pool']} x{worker['concurrency']}",
                    f"{b['businesses']} x {b['customers'] // b['businesses']}",
                    b["answered"],
                    b["drain_s"],
                    b["turns_per_s"],
                    b["p50_ms"],
                    b["p99_ms"],
                    b["business_p50_max_over_min"],
                    b["machine_cpu_busy"],
                    b["cpu_ms_per_message"],
                    b["cpu_bound_turns_per_s"],
                    b["worker_peak_rss_mb"],
                ]
            )
    table_print(
        [
            "worker",
            "burst",
            "answered",
            "drain s",
            "turns/s",
            "p50 ms",
            "p99 ms",
            "biz p50 max/min",
            "CPU busy",
            "CPU ms/msg (web, worker, pg)",
            "CPU-bound turns/s",
            "worker MB",
        ],
        rows,
    )
    if "turns_per_s_ratio" in result:
        print(f"turns/s, threads over prefork: {result['turns_per_s_ratio']}")
    for goal, met in result["goals"].items():
        print(f"{'met' if met else 'NOT MET'}: {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--llm-delay", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--no-baseline", action="store_true", help="Only the production worker.")
    args = parser.parse_args()
    result = run(
        customers=args.customers,
        llm_delay=args.llm_delay,
        concurrency=args.concurrency,
        baseline=not args.no_baseline,
    )
    report(result)
    result_write(NAME, result)


if __name__ == "__main__":
    main()
