"""LLM requests in flight to the provider are capped; a 429 with Retry-After pauses the provider.

The real `openai` client talks to the fake OpenAI server; requests run in threads,
as they do in the threads-pool worker.
"""

from __future__ import annotations

import threading
import time

import pytest

from conversations.llm import gate
from conversations.llm.client import LLMRequest, llm_complete
from conversations.llm.errors import LLMError
from conversations.llm.gate import llm_gated
from tests.fakes.openai_server import Reply

REQUEST = LLMRequest(messages=[{"role": "user", "content": "hi"}], model="gpt-4o-mini")


@pytest.fixture(autouse=True)
def fresh_gates(settings):
    gate._providers.clear()
    settings.LLM_MAX_RETRIES = 0
    yield
    gate._providers.clear()


def in_parallel(calls) -> tuple[list, float]:
    results: list = [None] * len(calls)

    def run(index, call) -> None:
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, time.monotonic() - started


class InFlight:
    """A responder that holds each request a while and records the most in flight per model."""

    def __init__(self, hold: float) -> None:
        self.hold, self.now, self.most = hold, {}, {}
        self.lock = threading.Lock()

    def __call__(self, body: dict) -> str:
        model = body["model"]
        with self.lock:
            self.now[model] = self.now.get(model, 0) + 1
            self.most[model] = max(self.most.get(model, 0), self.now[model])
            total = sum(self.now.values())
            self.most["*"] = max(self.most.get("*", 0), total)
        time.sleep(self.hold)
        with self.lock:
            self.now[model] -= 1
        return "OK"


def test_the_provider_cap_bounds_requests_in_flight_from_every_business(fake_llm, settings):
    settings.LLM_MAX_CONCURRENCY = 2
    tracker = InFlight(hold=0.3)
    fake_llm.responder("response", tracker)
    call = llm_gated(llm_complete)
    requests = [LLMRequest(messages=REQUEST.messages, model=f"model-{n % 3}") for n in range(6)]

    results, _ = in_parallel([lambda r=r: call(r) for r in requests])

    assert all(result.text == "OK" for result in results)
    assert tracker.most["*"] == 2


def test_the_provider_cap_holds_across_businesses_and_a_request_gives_up_after_its_wait(fake_llm, settings):
    settings.LLM_MAX_CONCURRENCY = 1
    settings.LLM_SLOT_WAIT_SECONDS = 0.2
    fake_llm.delay = 1.0
    first = second = llm_gated(llm_complete)

    results, _ = in_parallel([lambda: first(REQUEST), lambda: (time.sleep(0.1), second(REQUEST))[1]])

    assert sum(isinstance(r, LLMError) for r in results) == 1
    refused = next(r for r in results if isinstance(r, LLMError))
    assert refused.transient and "in flight" in refused.message
    assert len(fake_llm.requests) == 1


def test_a_429_with_retry_after_pauses_new_requests_to_the_provider(fake_llm):
    fake_llm.queue(
        Reply(status=429, json_content={"error": {"message": "slow down"}}, headers={"Retry-After": "1"})
    )
    call = llm_gated(llm_complete)

    with pytest.raises(LLMError) as refused:
        call(REQUEST)
    assert (refused.value.status_code, refused.value.retry_after) == (429, 1.0)
    started = time.monotonic()
    assert call(REQUEST).text == "OK"

    assert time.monotonic() - started >= 0.9
