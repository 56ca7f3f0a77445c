"""How many LLM requests may be in flight to the provider at once.

A worker thread waiting on the LLM costs little, so a worker runs many turns at
once; the provider still has limits. At most LLM_MAX_CONCURRENCY requests are in
flight to it from one worker process (one business's share is bounded a level up,
by the turns it may run: conversations/turn_slots.py). When the provider answers
429 with Retry-After (after the SDK's own retries), new requests to it wait that
long instead of adding to the pile.

The limit is per process: with several worker processes, the provider sees up to
(processes × LLM_MAX_CONCURRENCY).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from conversations.llm.client import LLMCallable, LLMRequest, LLMResult
from conversations.llm.errors import LLMError

# When the provider says 429 without Retry-After.
DEFAULT_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 60.0


class _Gate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._resume_at = 0.0

    @contextmanager
    def slot(self, *, deadline: float, what: str) -> Iterator[None]:
        pause = self._resume_at - time.monotonic()
        if pause > 0:
            if time.monotonic() + pause > deadline:
                raise LLMError(f"the provider asked to wait; {what} gave up", transient=True, status_code=429)
            time.sleep(pause)
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise LLMError(f"too many LLM requests in flight ({what})", transient=True)
        try:
            yield
        finally:
            self._slots.release()

    def back_off(self, seconds: float) -> None:
        with self._lock:
            self._resume_at = max(self._resume_at, time.monotonic() + seconds)


_lock = threading.Lock()
_providers: dict[str, _Gate] = {}


def _gate(gates: dict[str, _Gate], key: str, limit: int) -> _Gate:
    with _lock:
        gate = gates.get(key)
        if gate is None or gate.limit != limit:
            gate = gates[key] = _Gate(limit)
        return gate


def llm_gated(llm: LLMCallable) -> LLMCallable:
    """`llm`, waiting for a slot of the provider first (see the module)."""
    provider = _gate(_providers, settings.OPENAI_BASE_URL or "openai", settings.LLM_MAX_CONCURRENCY)

    def call(request: LLMRequest) -> LLMResult:
        deadline = time.monotonic() + settings.LLM_SLOT_WAIT_SECONDS
        with provider.slot(deadline=deadline, what="all businesses"):
            try:
                return llm(request)
            except LLMError as exc:
                if exc.status_code == 429:
                    provider.back_off(min(exc.retry_after or DEFAULT_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS))
                raise

    return call
