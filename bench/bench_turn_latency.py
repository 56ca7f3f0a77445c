"""Benchmark 2, turn latency: webhook accepted → reply at the Graph API, with an LLM that takes L.

gunicorn + the production Celery worker (threads pool) + the fake LLM answering every request
after a fixed L (300 ms by default). One message per conversation, each on a
new conversation (burst window 0), one at a time, so the figure is latency,
not queueing. Measured on one clock (this process): from the webhook's 200
to the moment the fake Graph API receives the text send for that customer.

    python -m bench.bench_turn_latency [--turns 30] [--llm-delay 0.3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.loadgen import HttpRequest, http_call, median, percentile, result_write, table_print
from bench.stack import bench_stack, sign, tenants_create, whatsapp_body

NAME = "turn_latency"
GOAL_FACTOR = 2.2


def _post(url: str, body: bytes) -> int:
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = HttpRequest(path="/webhooks/whatsapp/", body=body, headers={"X-Hub-Signature-256": sign(body)})
    status, _ = asyncio.run(http_call(parts.hostname, parts.port, request, timeout=30))
    return status


def run(*, turns: int, llm_delay: float, warmup: int = 3, concurrency: int = 8) -> dict[str, Any]:
    with bench_stack(llm_delay=llm_delay) as stack:
        tenant = tenants_create(1, burst_window=0)[0]
        stack.web_start(workers=2)
        stack.worker_start(concurrency=concurrency, pool="threads")
        latencies: list[float] = []
        phases: list[dict[str, float]] = []
        lost = 0
        for n in range(warmup + turns):
            wa_id = f"4479{n:08d}"
            body = whatsapp_body(
                tenant.phone_number_id, [(wa_id, f"wamid.turn.{n}", "Hi, are you open now?")]
            )
            status = _post(stack.web_url, body)
            accepted = time.monotonic()
            if status != 200:
                raise RuntimeError(f"webhook answered {status}")
            delivered = stack.graph.wait_for_send(wa_id, timeout=30)
            if n < warmup:
                continue  # first turns load code and fill connection pools
            if delivered is None:
                lost += 1
                continue
            latencies.append((delivered - accepted) * 1000)
            arrivals = [r["at"] for r in stack.llm.requests if accepted <= r["at"] <= delivered]
            if arrivals:
                # Where the time went: before the first LLM request, between the LLM
                # requests (each waits L), and after the last answer until the send.
                first, last = min(arrivals), max(arrivals)
                phases.append(
                    {
                        "to_first_llm_ms": (first - accepted) * 1000,
                        "llm_rounds_ms": (last - first) * 1000 + llm_delay * 1000,
                        "after_last_llm_ms": (delivered - last) * 1000 - llm_delay * 1000,
                        "llm_requests": len(arrivals),
                    }
                )
        llm_requests = len(stack.llm.requests)

    l_ms = llm_delay * 1000
    p50, p99 = median(latencies), percentile(latencies, 0.99)
    ratio = round(p50 / l_ms, 2) if p50 is not None else None
    return {
        "name": NAME,
        "config": {
            "turns": turns,
            "llm_delay_ms": l_ms,
            "warmup_turns": warmup,
            "celery_concurrency": concurrency,
            "llm_requests_per_turn": round(llm_requests / (warmup + turns), 2),
        },
        "latencies_ms": [round(v, 1) for v in latencies],
        "summary": {
            "p50_ms": round(p50, 1) if p50 is not None else None,
            "p99_ms": round(p99, 1) if p99 is not None else None,
            "p50_over_L": ratio,
            "p99_over_L": round(p99 / l_ms, 2) if p99 is not None else None,
            "not_delivered": lost,
        },
        "phases_median_ms": {
            key: round(median([p[key] for p in phases]), 1) for key in (phases[0] if phases else {})
        },
        "goals": {"p50 <= 2.2 x L": ratio is not None and ratio <= GOAL_FACTOR and lost == 0},
    }


def report(result: dict[str, Any]) -> None:
    s = result["summary"]
    table_print(
        ["L ms", "turns", "p50 ms", "p99 ms", "p50/L", "p99/L", "not delivered"],
        [
            [
                result["config"]["llm_delay_ms"],
                result["config"]["turns"],
                s["p50_ms"],
                s["p99_ms"],
                s["p50_over_L"],
                s["p99_over_L"],
                s["not_delivered"],
            ]
        ],
    )
    print("median phases:", result["phases_median_ms"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--llm-delay", type=float, default=0.3)
    args = parser.parse_args()
    result = run(turns=args.turns, llm_delay=args.llm_delay)
    report(result)
    result_write(NAME, result)


if __name__ == "__main__":
    main()
