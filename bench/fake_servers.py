"""The test fakes, with what the benchmarks need on top.

- `BenchLLM`: the FakeOpenAI server answering every request after a fixed delay.
- `BenchGraph`: the FakeGraphAPI recording when each text send reached it, per recipient.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.fakes.graph_api import FakeGraphAPI, Scripted
from tests.fakes.openai_server import FakeOpenAI


class BenchLLM(FakeOpenAI):
    """An OpenAI-compatible server that answers every request after `delay` seconds."""

    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay  # FakeOpenAI adds this to every request's scripted delay
        self.cached_tokens = 0

    def forget(self) -> None:
        """Drop the recorded request bodies (a long run would keep them all)."""
        with self._lock:
            self.requests.clear()


class BenchGraph(FakeGraphAPI):
    """A fake Graph API that keeps only (recipient, arrival time) of text sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sends: dict[str, list[float]] = {}
        self.send_count = 0
        self._sends_lock = threading.Lock()
        self._arrived = threading.Condition(self._sends_lock)

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Scripted:
        at = time.monotonic()
        scripted = super()._answer(method, path, headers, raw)
        with self._lock:
            body: Any = self.requests.pop().body if self.requests else None
        if isinstance(body, dict) and body.get("type") == "text":
            with self._arrived:
                self.sends.setdefault(str(body.get("to", "")), []).append(at)
                self.send_count += 1
                self._arrived.notify_all()
        return scripted

    def wait_for_send(self, recipient: str, *, timeout: float) -> float | None:
        """The monotonic time the first text send to `recipient` arrived, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while not self.sends.get(recipient):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._arrived.wait(left)
            return self.sends[recipient][0]
