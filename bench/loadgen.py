"""An open-model HTTP load generator in pure asyncio (no dependency beyond the stdlib).

Requests are scheduled at a fixed arrival rate whatever the server does: a slow
server makes requests pile up instead of slowing the generator down (a closed
loop would hide that, "coordinated omission"). Latency is counted from each
request's scheduled time, so time spent waiting for the generator counts too.
Every request is on a fresh connection with `Connection: close`, as gunicorn's
sync workers answer.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import platform
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class HttpRequest:
    path: str
    body: bytes = b""
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=dict)
    # Free-form tag the caller may use (e.g. "duplicate").
    tag: str = ""


@dataclass
class StepResult:
    offered_rps: float
    duration_s: float
    sent: int
    ok: int
    errors: int
    achieved_rps: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    statuses: dict[str, int]
    error_samples: list[str]
    # Whether the server kept up: ≥ 95 % of the offered rate answered 2xx, < 1 % errors.
    sustained: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered))))
    return ordered[rank - 1]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _encode(request: HttpRequest, host: str) -> bytes:
    headers = {
        "Host": host,
        "Connection": "close",
        "Content-Length": str(len(request.body)),
        **({"Content-Type": "application/json"} if request.body else {}),
        **request.headers,
    }
    lines = [f"{request.method} {request.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    head = "\r\n".join(lines) + "\r\n"
    return head.encode("latin-1") + b"\r\n" + request.body


async def http_call(host: str, port: int, request: HttpRequest, *, timeout: float) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""

    async def call() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(_encode(request, f"{host}:{port}"))
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].split()
        if len(status_line) < 2:
            raise ConnectionError("no HTTP status line in the answer")
        return int(status_line[1]), body

    return await asyncio.wait_for(call(), timeout)


async def run_open_async(
    url: str,
    make_request: Callable[[int], HttpRequest],
    *,
    rate: float,
    duration: float,
    timeout: float = 10.0,
    on_response: Callable[[HttpRequest, int, bytes, float], None] | None = None,
) -> StepResult:
    """Send `rate` requests a second for `duration` seconds; `make_request(i)` builds the i-th one.

    `on_response(request, status, body, done_at)` is called for each answer
    (done_at on the time.monotonic() clock).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    total = max(1, int(rate * duration))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    error_samples: list[str] = []
    last_done = 0.0

    async def one(request: HttpRequest, scheduled: float) -> None:
        nonlocal last_done
        try:
            status, body = await http_call(host, port, request, timeout=timeout)
        except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] += 1
            if len(error_samples) < 5:
                error_samples.append(f"{type(exc).__name__}: {exc}")
            return
        done = time.monotonic()
        last_done = max(last_done, done)
        statuses[str(status)] += 1
        if 200 <= status < 300:
            latencies.append((done - scheduled) * 1000)
        elif len(error_samples) < 5:
            error_samples.append(f"{status}: {body[:200]!r}")
        if on_response is not None:
            on_response(request, status, body, done)

    start = time.monotonic() + 0.05
    tasks = []
    for i in range(total):
        request = make_request(i)
        scheduled = start + i / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, scheduled)))
    await asyncio.gather(*tasks)

    ok = len(latencies)
    elapsed = max(duration, (last_done - start) if last_done else duration)
    errors = total - ok
    achieved = ok / elapsed
    return StepResult(
        offered_rps=rate,
        duration_s=round(elapsed, 3),
        sent=total,
        ok=ok,
        errors=errors,
        achieved_rps=round(achieved, 1),
        p50_ms=_round(percentile(latencies, 0.50)),
        p90_ms=_round(percentile(latencies, 0.90)),
        p99_ms=_round(percentile(latencies, 0.99)),
        max_ms=_round(max(latencies) if latencies else None),
        statuses=dict(statuses),
        error_samples=error_samples,
        sustained=achieved >= 0.95 * rate and errors <= 0.01 * total,
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def run_open(url: str, make_request: Callable[[int], HttpRequest], **kwargs: Any) -> StepResult:
    """Synchronous wrapper of `run_open_async`."""
    return asyncio.run(run_open_async(url, make_request, **kwargs))


# --- reporting (shared by the benchmarks) -----------------------------------------------

# BENCH_RESULTS_DIR: elsewhere (a quick run must not overwrite the latest full figures).
RESULTS_DIR = Path(os.environ.get("BENCH_RESULTS_DIR") or Path(__file__).resolve().parent / "results")


def table_print(headers: list[str], rows: list[list[Any]]) -> None:
    """A plain text table, columns padded to their widest cell."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def result_write(name: str, result: dict[str, Any], directory: Path | None = None) -> Path:
    """bench/results/<name>.json, with the time and host it was measured on."""
    directory = directory or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    stamped = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **result,
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(stamped, indent=2, default=str) + "\n")
    return path
