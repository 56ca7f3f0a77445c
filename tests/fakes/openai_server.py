"""A local OpenAI-compatible chat completions server for tests.

The real `openai` client talks to it over real HTTP (the seam is HTTP, so we
fake the server, not the client). It honours `response_format` json_schema by
answering schema-shaped JSON, reports usage (with
`prompt_tokens_details.cached_tokens`), and can be scripted to fail: 5xx,
429 with Retry-After, a delay longer than the client's timeout, a body that is
not JSON, or content that violates the schema.

Answers come, in order of preference, from:

1. the shared queue (`fake.queue(...)`), consumed by any request;
2. the purpose's queue (`fake.on("extraction", ...)`);
3. the purpose's responder (`fake.responder("selection", fn)`), a function of the
   request body, used for every request of that purpose;
4. a default: the first enum value / "ok" / nulls shaped by the schema, or "OK".

The purpose is read from the request: the json_schema name (`stage_selection`,
`data_extraction`, `reply`); plain-text requests count as `response`.

Every request body is recorded in `fake.requests` (dicts with `purpose` and `body`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

SCHEMA_PURPOSES = {"stage_selection": "selection", "data_extraction": "extraction", "reply": "response"}
_UNSET: Any = object()


@dataclass
class Reply:
    """One scripted answer. `json_content` is serialised into the message content."""

    content: str | None = None
    json_content: Any = _UNSET
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # A raw body replacing the whole response (e.g. not JSON at all).
    raw_body: bytes | None = None
    # None: no usage block at all; a dict: sent as is; unset: computed.
    usage: Any = _UNSET
    error_message: str = "scripted error"

    @classmethod
    def error(cls, status: int = 500, message: str = "scripted error", **kwargs: Any) -> Reply:
        return cls(status=status, error_message=message, **kwargs)

    @classmethod
    def rate_limited(cls, retry_after: float = 0.3) -> Reply:
        return cls(status=429, headers={"Retry-After": str(retry_after)}, error_message="rate limited")

    @classmethod
    def slow(cls, seconds: float, **kwargs: Any) -> Reply:
        return cls(delay=seconds, **kwargs)

    @classmethod
    def malformed_body(cls) -> Reply:
        return cls(raw_body=b'{"id": "chatcmpl-broken", "choices": [')


Responder = Callable[[dict[str, Any]], "Reply | dict | list | str"]


def schema_instance(schema: dict[str, Any]) -> Any:
    """A minimal instance shaped like `schema`: what a schema-honouring server might say."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        return schema_instance(schema["anyOf"][0])
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        if "null" in kind:
            return None
        kind = kind[0]
    if kind == "object":
        required = schema.get("required", [])
        return {k: schema_instance(v) for k, v in schema.get("properties", {}).items() if k in required}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    return "ok"


def request_purpose(body: dict[str, Any]) -> str:
    response_format = body.get("response_format") or {}
    name = (response_format.get("json_schema") or {}).get("name", "")
    return SCHEMA_PURPOSES.get(name, "response")


def request_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    response_format = body.get("response_format") or {}
    if response_format.get("type") != "json_schema":
        return None
    return response_format["json_schema"].get("schema")


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.delay = 0.0
        self.cached_tokens: int | None = 0
        self._queue: deque[Reply | Responder] = deque()
        self._purpose_queues: dict[str, deque[Reply | Responder]] = {}
        self._responders: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A short poll interval keeps shutdown (once per test) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )

    # --- lifecycle ---------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()  # wakes handlers sleeping in a scripted delay
        self._server.shutdown()
        self._server.server_close()

    # --- scripting ---------------------------------------------------------------

    def queue(self, *replies: Reply | Responder | dict | str) -> None:
        with self._lock:
            self._queue.extend(_as_reply(r) for r in replies)

    def on(self, purpose: str, *replies: Reply | Responder | dict | str) -> None:
        with self._lock:
            self._purpose_queues.setdefault(purpose, deque()).extend(_as_reply(r) for r in replies)

    def responder(self, purpose: str, fn: Responder) -> None:
        self._responders[purpose] = fn

    def bodies(self, purpose: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [r["body"] for r in self.requests if purpose is None or r["purpose"] == purpose]

    def purposes(self) -> list[str]:
        with self._lock:
            return [r["purpose"] for r in self.requests]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._purpose_queues.clear()
            self._responders.clear()

    # --- answering ---------------------------------------------------------------

    def _next(self, purpose: str, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self._queue:
                item = self._queue.popleft()
            elif self._purpose_queues.get(purpose):
                item = self._purpose_queues[purpose].popleft()
            else:
                item = self._responders.get(purpose)
        if item is None:
            schema = request_schema(body)
            return Reply(json_content=schema_instance(schema)) if schema is not None else Reply(content="OK")
        if callable(item) and not isinstance(item, Reply):
            return _as_reply(item(body))
        return item

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        if reply.json_content is not _UNSET:
            content = json.dumps(reply.json_content)
        else:
            content = reply.content if reply.content is not None else ""
        completion: dict[str, Any] = {
            "id": f"chatcmpl-fake-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
        }
        if reply.usage is _UNSET:
            prompt_tokens = estimate_tokens(json.dumps(body.get("messages", [])))
            completion_tokens = estimate_tokens(content)
            usage: dict[str, Any] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if self.cached_tokens is not None:
                usage["prompt_tokens_details"] = {"cached_tokens": min(self.cached_tokens, prompt_tokens)}
            completion["usage"] = usage
        elif reply.usage is not None:
            completion["usage"] = reply.usage
        return completion

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._send(
                        400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}}
                    )
                    return
                purpose = request_purpose(body)
                with fake._lock:
                    fake.requests.append({"purpose": purpose, "body": body, "at": time.monotonic()})
                reply = fake._next(purpose, body)
                delay = fake.delay + reply.delay
                if delay and fake._stop.wait(delay):
                    return
                if reply.raw_body is not None:
                    self._send_raw(reply.status, reply.raw_body, reply.headers)
                elif reply.status != 200:
                    error = {"error": {"message": reply.error_message, "type": "server_error", "code": None}}
                    self._send(reply.status, error, reply.headers)
                else:
                    self._send(200, fake._completion(body, reply), reply.headers)

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                self._send_raw(status, json.dumps(payload).encode(), headers)

            def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): nothing to answer

        return Handler


def _as_reply(item: Any) -> Any:
    """Scripts may use a Reply, a responder function, a JSON-able object or a text."""
    if isinstance(item, Reply) or callable(item):
        return item
    if isinstance(item, str):
        return Reply(content=item)
    return Reply(json_content=item)


@pytest.fixture
def fake_llm(settings):
    """A running fake server with the LLM settings pointing at it."""
    server = FakeOpenAI().start()
    settings.OPENAI_BASE_URL = server.base_url
    settings.OPENAI_API_KEY = "test"
    try:
        yield server
    finally:
        server.stop()
