"""The fault-injection run's load (`python -m bench.chaos`): signed webhooks posted on schedule."""

from __future__ import annotations

import contextlib
import heapq
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.chaos_plan import Delivery, sign, whatsapp_body
from bench.chaos_stack import APP_SECRET, PHONE_NUMBER_ID


class LoadGen:
    """Posts the plan on schedule; like Meta, retries a delivery until it gets a 200."""

    def __init__(
        self, url: str, plan: list[Delivery], *, threads: int = 24, give_up_after: float = 120.0
    ) -> None:
        self.url, self.plan, self.give_up_after = url, plan, give_up_after
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="post")
        self.local = threading.local()
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.acked: set[str] = set()
        self.posts = 0
        self.retries = 0
        self.bodies: dict[int, bytes] = {}
        # (monotonic time, status) of every answer that was not a 200: when the errors came.
        self.failed_at: list[tuple[float, str]] = []

    def _session(self):
        import requests

        if getattr(self.local, "session", None) is None:
            self.local.session = requests.Session()
        return self.local.session

    def _post(self, delivery: Delivery, barrier: threading.Barrier | None) -> None:
        import requests

        body = self.bodies[delivery.seq]
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, APP_SECRET)}
        if barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=2)
        deadline, pause = time.monotonic() + self.give_up_after, 0.5
        while True:
            started = time.monotonic()
            try:
                status = str(
                    self._session().post(self.url, data=body, headers=headers, timeout=35).status_code
                )
            except requests.RequestException as exc:
                status = type(exc).__name__
                self.local.session = None
            with self.lock:
                self.posts += 1
                self.statuses[status] += 1
                if status == "200":
                    self.latencies.append(time.monotonic() - started)
                    self.acked.add(delivery.wamid)
                else:
                    self.failed_at.append((time.monotonic(), status))
            if status == "200" or time.monotonic() > deadline:
                return
            with self.lock:
                self.retries += 1
            time.sleep(pause)
            pause = min(pause * 2, 8.0)

    def run(self, start: float, stop: threading.Event) -> None:
        timestamp = int(time.time())
        events: list[tuple[float, int, int, Delivery]] = []
        for delivery in self.plan:
            self.bodies[delivery.seq] = whatsapp_body(
                phone_number_id=PHONE_NUMBER_ID, delivery=delivery, timestamp=timestamp + int(delivery.at)
            )
            events.append((delivery.at, delivery.seq, 0, delivery))
            if delivery.duplicate == "later":
                events.append((delivery.at + delivery.again_after, delivery.seq, 1, delivery))
        heapq.heapify(events)
        futures = []
        while events and not stop.is_set():
            at, _, again, delivery = heapq.heappop(events)
            wait = start + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not again and delivery.duplicate == "concurrent":
                barrier = threading.Barrier(2)
                futures += [self.pool.submit(self._post, delivery, barrier) for _ in range(2)]
            else:
                futures.append(self.pool.submit(self._post, delivery, None))
        for future in futures:
            future.result()
        self.pool.shutdown()

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)

        def pct(p: float) -> float | None:
            return (
                round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 1)
                if latencies
                else None
            )

        return {
            "posts": self.posts,
            "retried_posts": self.retries,
            "responses": dict(sorted(self.statuses.items())),
            "ack_ms_p50": pct(0.5),
            "ack_ms_p99": pct(0.99),
            "ack_ms_mean": round(statistics.fmean(latencies) * 1000, 1) if latencies else None,
        }
