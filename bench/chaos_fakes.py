"""The fake LLM and Graph API that fail on purpose during the fault-injection run.

The fake LLM echoes the tokens of the messages a turn answers (see
bench.chaos_plan), so each AI reply row says which inbound messages it answers;
the fake Graph API counts sends per message id.
"""

# Seeded pseudo-randomness makes a run reproducible.
# ruff: noqa: S311

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

from bench.chaos_plan import tokens_in


def _fakes():
    # tests.fakes imports pytest for its fixtures; only the classes are used here.
    from tests.fakes.graph_api import FakeGraphAPI, Scripted
    from tests.fakes.openai_server import FakeOpenAI, Reply, request_schema, schema_instance

    return FakeGraphAPI, Scripted, FakeOpenAI, Reply, request_schema, schema_instance


def quiet(server: Any) -> None:
    """A killed worker resets its connections mid-request: not worth a traceback per request."""
    server.handle_error = lambda request, client_address: None


def pending_tokens(body: dict[str, Any]) -> list[str]:
    """Tokens of the customer messages after the last assistant message: what this turn answers."""
    messages = body.get("messages") or []
    tail: list[str] = []
    for message in reversed(messages):
        if message.get("role") == "assistant":
            break
        if message.get("role") == "user":
            tail = tokens_in(str(message.get("content", ""))) + tail
    return list(dict.fromkeys(tail))


def chaos_llm(*, failure_rate: float, timeout_delay: float, seed: int):
    """A FakeOpenAI whose every purpose fails `failure_rate` of the time (500, 429 or too slow)."""
    _, _, FakeOpenAI, Reply, request_schema, schema_instance = _fakes()
    rng = random.Random(seed * 31 + 3)
    lock = threading.Lock()
    failures: Counter[str] = Counter()

    def answer(body: dict[str, Any]) -> Any:
        schema = request_schema(body)
        content = schema_instance(schema) if schema is not None else None
        tokens = pending_tokens(body)
        # The newest one is the turn's trigger; the others ride along for the coverage check.
        text = f"Thanks, noted: {' '.join(tokens)} [re {tokens[-1]}]" if tokens else "Thanks, noted."
        if isinstance(content, dict) and "reply" in content:
            content["reply"] = text
            if "quick_replies" in content:
                content["quick_replies"] = []
        with lock:
            roll, kind = rng.random(), rng.choice(("500", "429", "timeout"))
        if roll < failure_rate:
            with lock:
                failures[kind] += 1
            if kind == "500":
                return Reply.error(500, "chaos: internal error")
            if kind == "429":
                return Reply.rate_limited(0.2)
            return (
                Reply.slow(timeout_delay, json_content=content)
                if content is not None
                else Reply.slow(timeout_delay, content=text)
            )
        if content is None:
            return Reply(content=text)
        return Reply(json_content=content)

    server = FakeOpenAI()
    quiet(server._server)
    for purpose in ("selection", "extraction", "response"):
        server.responder(purpose, answer)
    server.failures = failures
    return server


def chaos_graph(*, failure_rate: float, seed: int):
    """A FakeGraphAPI failing `failure_rate` of sends (HTTP 500, Graph code 130429), counting sends per id."""
    FakeGraphAPI, Scripted, *_ = _fakes()

    class ChaosGraph(FakeGraphAPI):
        def __init__(self) -> None:
            super().__init__()
            self.rng = random.Random(seed * 17 + 5)
            self.accepted: Counter[str] = Counter()
            self.attempts: Counter[str] = Counter()
            self.failures: Counter[str] = Counter()
            self.other_requests = 0

        def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Any:
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                body = {}
            message_id = body.get("biz_opaque_callback_data") if isinstance(body, dict) else None
            with self._lock:
                n = next(self._ids)
                if not message_id:  # read receipts / typing indicators
                    self.other_requests += 1
                    return Scripted(status=200, body={"success": True})
                self.attempts[message_id] += 1
                if self.rng.random() < failure_rate:
                    if self.rng.random() < 0.5:
                        self.failures["500"] += 1
                        return Scripted(status=500, body="Internal Server Error")
                    self.failures["130429"] += 1
                    return Scripted(
                        status=400,
                        body={
                            "error": {
                                "message": "(#130429) Rate limit hit",
                                "type": "OAuthException",
                                "code": 130429,
                                "fbtrace_id": "ChaosTrace",
                            }
                        },
                    )
                self.accepted[message_id] += 1
            to = str(body.get("to", ""))
            return Scripted(
                status=200,
                body={
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": f"wamid.out.{n}"}],
                },
            )

    graph = ChaosGraph()
    quiet(graph._server)
    return graph
