"""LLM requests in flight are capped per provider and per business; a 429 pauses the provider.

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
    gate._businesses.clear()
    settings.LLM_MAX_RETRIES = 0
    yield
    gate._providers.clear()
    gate._businesses.clear()


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


def test_one_business_gets_no_more_than_its_share_while_another_is_served_beside_it(fake_llm, settings):
    settings.LLM_MAX_CONCURRENCY_PER_BUSINESS = 2
    tracker = InFlight(hold=0.3)
    fake_llm.responder("response", tracker)
    busy = llm_gated(llm_complete, business_id="broadcaster")
    other = llm_gated(llm_complete, business_id="bakery")
    broadcast = LLMRequest(messages=REQUEST.messages, model="broadcaster-model")
    bakery = LLMRequest(messages=REQUEST.messages, model="bakery-model")

    results, _ = in_parallel([*(lambda: busy(broadcast) for _ in range(6)), lambda: other(bakery)])

    assert all(result.text == "OK" for result in results)
    assert tracker.most["broadcaster-model"] == 2  # never more than its share
    assert tracker.most["*"] == 3  # the bakery did not wait behind the broadcast


def test_the_provider_cap_holds_across_businesses_and_a_request_gives_up_after_its_wait(fake_llm, settings):
    settings.LLM_MAX_CONCURRENCY = 1
    settings.LLM_SLOT_WAIT_SECONDS = 0.2
    fake_llm.delay = 1.0
    first = llm_gated(llm_complete, business_id="a")
    second = llm_gated(llm_complete, business_id="b")

    results, _ = in_parallel([lambda: first(REQUEST), lambda: (time.sleep(0.1), second(REQUEST))[1]])

    assert sum(isinstance(r, LLMError) for r in results) == 1
    refused = next(r for r in results if isinstance(r, LLMError))
    assert refused.transient and "in flight" in refused.message
    assert len(fake_llm.requests) == 1


def test_a_429_with_retry_after_pauses_new_requests_to_the_provider(fake_llm):
    fake_llm.queue(
        Reply(status=429, json_content={"error": {"message": "slow down"}}, headers={"Retry-After": "1"})
    )
    call = llm_gated(llm_complete, business_id="a")

    with pytest.raises(LLMError) as refused:
        call(REQUEST)
    assert (refused.value.status_code, refused.value.retry_after) == (429, 1.0)
    started = time.monotonic()
    assert call(REQUEST).text == "OK"

    assert time.monotonic() - started >= 0.9
