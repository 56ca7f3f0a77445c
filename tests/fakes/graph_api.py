"""A fake Meta Graph API: a real HTTP server on 127.0.0.1 that answers like Meta.

The adapters' real `requests` code talks to it, so tests see exact paths,
headers and JSON bodies. Script failures with `fail()`, `graph_error()` or
`delay()`; each scripted answer is used by one request, in order, and then
the server goes back to answering successfully.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw text when it was not JSON

    @property
    def version(self) -> str:
        return self.path.split("/")[1]


@dataclass
class Scripted:
    status: int = 200
    body: Any = None  # dict/list → JSON; str/bytes → sent as they are; None → Meta's default answer
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class FakeGraphAPI:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        # What GET /{version}/{node} answers for each access token: Meta's view of who may read what.
        self.nodes: dict[str, dict[str, dict[str, Any]]] = {}
        self.everything_owned = False
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # Do not join handler threads on close: a scripted delay may still be sleeping.
        self._server.block_on_close = False
        # A short poll interval so stop() (shutdown) returns quickly after each test.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGraphAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # Scripting

    def fail(self, status: int, body: Any = None, *, headers: dict[str, str] | None = None) -> None:
        """The next request gets `status` with `body` (a dict is sent as JSON)."""
        self._push(Scripted(status=status, body=body, headers=headers or {}))

    def ok(self) -> None:
        """The next request gets Meta's normal answer (to script a failure after it)."""
        self._push(Scripted())

    def graph_error(
        self,
        code: int,
        message: str = "",
        *,
        status: int = 400,
        subcode: int | None = None,
        error_type: str = "OAuthException",
        details: str | None = None,
    ) -> None:
        """The next request gets Meta's error envelope with `code`."""
        error: dict[str, Any] = {
            "message": message or f"(#{code}) error {code}",
            "type": error_type,
            "code": code,
            "fbtrace_id": f"Fake{code}Trace",
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        if details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        self._push(Scripted(status=status, body={"error": error}))

    def delay(self, seconds: float, status: int = 200, body: Any = None) -> None:
        """The next request is answered only after `seconds` (to force a client timeout)."""
        self._push(Scripted(status=status, body=body, delay=seconds))

    def grant(self, token: str, node: str, answer: dict[str, Any]) -> None:
        """GET /{version}/{node} with `token` answers `answer`; other nodes answer error 100."""
        self.nodes.setdefault(token, {})[node] = answer

    def trust_every_token(self) -> None:
        """Every token may read every phone number node (for tests about something else)."""
        self.everything_owned = True

    def owns(self, token: str, kind: str, external_id: str, name: str = "Owned account") -> None:
        """`token` controls `external_id`, the way each channel's ownership check asks Meta."""
        if kind == "whatsapp":
            self.grant(
                token,
                external_id,
                {"id": external_id, "display_phone_number": "+1 555 0100", "verified_name": name},
            )
        elif kind == "messenger":
            self.grant(token, "me", {"id": external_id, "name": name})
        else:
            self.grant(token, "me", {"id": "app-scoped-1", "user_id": external_id, "username": name})

    def _push(self, scripted: Scripted) -> None:
        with self._lock:
            self._script.append(scripted)

    # Inspection

    def bodies(self) -> list[Any]:
        return [request.body for request in self.requests]

    @property
    def last(self) -> RecordedRequest:
        return self.requests[-1]

    # Answering

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Scripted:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._lock:
            self.requests.append(RecordedRequest(method=method, path=path, headers=headers, body=body))
            scripted = self._script.popleft() if self._script else Scripted()
            n = next(self._ids)
        if scripted.body is None and method == "GET" and scripted.status < 300:
            return self._node(path, headers)
        if scripted.body is None:
            answer = _meta_answer(body, n) if scripted.status < 300 else ""
            scripted = Scripted(
                status=scripted.status, body=answer, delay=scripted.delay, headers=scripted.headers
            )
        return scripted

    def _node(self, path: str, headers: dict[str, str]) -> Scripted:
        token = headers.get("Authorization", "").removeprefix("Bearer ")
        node = path.split("?")[0].strip("/").split("/")[-1]
        if self.everything_owned and node != "me":
            return Scripted(body={"id": node, "display_phone_number": "+1 555 0100", "verified_name": "Any"})
        if token not in self.nodes:
            return Scripted(
                status=401,
                body={
                    "error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}
                },
            )
        answer = self.nodes[token].get(node)
        if answer is None:
            message = (
                f"Unsupported get request. Object with ID '{node}' does not exist, cannot be loaded "
                "due to missing permissions, or does not support this operation."
            )
            return Scripted(
                status=400, body={"error": {"message": message, "type": "GraphMethodException", "code": 100}}
            )
        return Scripted(body=answer)


def _meta_answer(body: Any, n: int) -> dict[str, Any]:
    """What Meta answers to a successful POST /{id}/messages."""
    body = body if isinstance(body, dict) else {}
    if body.get("messaging_product") == "whatsapp":
        if body.get("status") == "read":
            return {"success": True}
        to = str(body.get("to", ""))
        return {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
            "messages": [{"id": f"wamid.{n}"}],
        }
    recipient = (body.get("recipient") or {}).get("id", "")
    if "sender_action" in body:
        return {"recipient_id": recipient}
    return {"recipient_id": recipient, "message_id": f"m_{n}"}


def _handler_for(fake: FakeGraphAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self._handle()

        def do_GET(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            scripted = fake._answer(self.command, self.path, dict(self.headers.items()), raw)
            if scripted.delay and fake._closing.wait(scripted.delay):
                return
            if isinstance(scripted.body, dict | list):
                payload = json.dumps(scripted.body).encode()
                content_type = "application/json"
            else:
                payload = scripted.body.encode() if isinstance(scripted.body, str) else (scripted.body or b"")
                content_type = "text/html"
            try:
                self.send_response(scripted.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture
def fake_graph(settings: Any) -> Any:
    """A running FakeGraphAPI with META_GRAPH_URL (and the Instagram host) pointing at it."""
    server = FakeGraphAPI().start()
    settings.META_GRAPH_URL = server.url
    settings.META_INSTAGRAM_GRAPH_URL = server.url
    settings.META_GRAPH_VERSION = "v25.0"
    yield server
    server.stop()
