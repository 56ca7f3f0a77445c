"""Helpers for the fault-injection run (`python -m bench.chaos`).

Pure parts (delivery plan, webhook bodies and signatures, reply tokens, the
invariant checks) are unit-tested in tests/bench/test_chaos_smoke.py; the rest
starts and kills the run's own processes (a private Redis, gunicorn, a Celery
worker) and the fake LLM / Graph API that fail on purpose.
"""

# Seeded pseudo-randomness makes a run reproducible (S311); the commands run are our own (S603).
# ruff: noqa: S311, S603

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

# Every customer text carries a token naming its contact and sequence number;
# the fake LLM echoes the tokens of the messages a turn answers, so each AI
# reply row says exactly which inbound messages it answers.
TOKEN_RE = re.compile(r"\bc\d+m\d+\b")


def message_token(*, contact: int, seq: int) -> str:
    return f"c{contact}m{seq}"


TRIGGER_RE = re.compile(r"\[re (c\d+m\d+)\]")


def tokens_in(text: str) -> list[str]:
    return TOKEN_RE.findall(text or "")


def trigger_in(text: str) -> str | None:
    """The token of the newest message a reply answers (its turn's trigger), if it names one."""
    found = TRIGGER_RE.search(text or "")
    return found.group(1) if found else None


# --- The delivery plan ------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One customer message: posted at `at` seconds, maybe twice (a duplicate delivery)."""

    at: float
    seq: int
    contact: int
    wamid: str
    text: str
    # "concurrent": the same body posted twice at once; "later": posted again after `again_after` s.
    duplicate: str | None = None
    again_after: float = 0.0


def plan_deliveries(
    *, messages: int, contacts: int, rate: float, duplicate_rate: float = 0.2, seed: int = 1
) -> list[Delivery]:
    """`messages` deliveries at a steady `rate` per second over `contacts` customers.

    A `duplicate_rate` share is delivered twice: half of those concurrently,
    half again 0.5-10 s later (Meta redelivers at least once).
    """
    rng = random.Random(seed)
    plan = []
    for seq in range(messages):
        contact = rng.randrange(contacts)
        token = message_token(contact=contact, seq=seq)
        duplicate, again_after = None, 0.0
        if rng.random() < duplicate_rate:
            if rng.random() < 0.5:
                duplicate = "concurrent"
            else:
                duplicate, again_after = "later", round(rng.uniform(0.5, 10.0), 2)
        plan.append(
            Delivery(
                at=seq / rate,
                seq=seq,
                contact=contact,
                wamid=f"wamid.chaos.{seed}.{seq}",
                text=f"Hello, this is question {token}",
                duplicate=duplicate,
                again_after=again_after,
            )
        )
    return plan


def contact_wa_id(contact: int) -> str:
    return f"551190000{contact:04d}"


def whatsapp_body(*, phone_number_id: str, delivery: Delivery, timestamp: int) -> bytes:
    """A webhook body as WhatsApp Cloud API sends it for one text message."""
    wa_id = contact_wa_id(delivery.contact)
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "WABA-CHAOS",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550001111",
                                "phone_number_id": phone_number_id,
                            },
                            "contacts": [
                                {"profile": {"name": f"Customer {delivery.contact}"}, "wa_id": wa_id}
                            ],
                            "messages": [
                                {
                                    "from": wa_id,
                                    "id": delivery.wamid,
                                    "timestamp": str(timestamp),
                                    "type": "text",
                                    "text": {"body": delivery.text},
                                }
                            ],
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(payload).encode()


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- Fault schedule -----------------------------------------------------------------


def kill_schedule(*, duration: float, kills: int, seed: int, min_gap: float = 8.0) -> list[float]:
    """Moments (seconds from the start) to SIGKILL the worker, spread over the run, `min_gap` apart."""
    rng = random.Random(seed * 7919 + 1)
    if kills <= 0 or duration <= 0:
        return []
    slot = duration / kills
    moments = []
    for index in range(kills):
        low = index * slot + min(min_gap / 2, slot / 4)
        high = (index + 1) * slot - min(min_gap / 2, slot / 4)
        moments.append(round(rng.uniform(low, max(low, high)), 2))
    return moments


# --- Invariants -----------------------------------------------------------------------

INBOUND_FINAL = {"answered", "failed", "skipped"}
OUTBOUND_DONE = {"sent", "delivered", "read"}
PENDING = {"received", "processing", "queued", "sending"}


def reason_group(text: str) -> str:
    """A failure reason without its variable parts, to count reasons by kind."""
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", text or "")
    text = re.sub(r"\d+(\.\d+)?", "N", text)
    # The SDK repeats the status and body after "Error code:"; the kind is said before it.
    text = re.split(r":\s*Error code", text.strip())[0]
    return text.splitlines()[0][:110].rstrip(" :") if text.strip() else "(no reason)"


@dataclass
class Facts:
    """What the run observed, gathered from the database and the fakes."""

    wamids_sent: set[str]
    wamids_acked: set[str]
    # (external_id, status, error) of every inbound customer row
    inbound: list[tuple[str, str, str]]
    # (message id, author, status, error, text) of every outbound row
    outbound: list[tuple[str, str, str, str, str]]
    graph_accepted: dict[str, int]  # sends the fake Graph API accepted, per our message id
    graph_attempts: dict[str, int] = field(default_factory=dict)
    wamid_tokens: dict[str, str] = field(default_factory=dict)  # wamid -> its text's token


def evaluate(facts: Facts) -> tuple[dict[str, Any], list[str]]:
    """Counts for the report and the list of violated invariants (empty: all hold)."""
    violations: list[str] = []
    stored = Counter(external_id for external_id, _, _ in facts.inbound)
    duplicates = {wamid: n for wamid, n in stored.items() if n > 1}
    if duplicates:
        violations.append(
            f"{len(duplicates)} inbound messages stored more than once, e.g. {sorted(duplicates)[:3]}"
        )
    missing = facts.wamids_acked - set(stored)
    if missing:
        violations.append(
            f"{len(missing)} acknowledged inbound messages not stored, e.g. {sorted(missing)[:3]}"
        )
    unacked = facts.wamids_sent - facts.wamids_acked
    if unacked:
        violations.append(
            f"{len(unacked)} inbound messages never acknowledged with 200, e.g. {sorted(unacked)[:3]}"
        )
    strangers = set(stored) - facts.wamids_sent
    if strangers:
        violations.append(f"{len(strangers)} inbound rows that were never sent, e.g. {sorted(strangers)[:3]}")

    statuses = Counter(status for _, status, _ in facts.inbound)
    stuck = [wamid for wamid, status, _ in facts.inbound if status not in INBOUND_FINAL]
    if stuck:
        violations.append(f"{len(stuck)} inbound messages left unfinished, e.g. {stuck[:3]}")
    unexplained = [
        wamid for wamid, status, error in facts.inbound if status in ("failed", "skipped") and not error
    ]
    if unexplained:
        violations.append(
            f"{len(unexplained)} failed/skipped inbound messages without a reason, e.g. {unexplained[:3]}"
        )

    # Which AI reply rows answer which inbound messages. A turn answers its pending
    # messages; the reply names the newest (the turn's trigger), and no two replies
    # may name the same one. It also echoes every message the prompt showed after
    # the last assistant message, so an answered message must appear in some reply.
    replies_per_token: Counter[str] = Counter()
    replies_per_trigger: Counter[str] = Counter()
    for _, author, _, _, text in facts.outbound:
        if author == "ai":
            replies_per_token.update(set(tokens_in(text)))
            trigger = trigger_in(text)
            if trigger:
                replies_per_trigger[trigger] += 1
    twice = {token: n for token, n in replies_per_trigger.items() if n > 1}
    if twice:
        violations.append(f"{len(twice)} turns answered by more than one AI reply, e.g. {sorted(twice)[:3]}")
    unanswered = [
        wamid
        for wamid, status, _ in facts.inbound
        if status == "answered"
        and facts.wamid_tokens.get(wamid)
        and not replies_per_token[facts.wamid_tokens[wamid]]
    ]
    if unanswered:
        violations.append(
            f"{len(unanswered)} inbound messages marked answered without an AI reply, e.g. {unanswered[:3]}"
        )

    sent_twice = {mid: n for mid, n in facts.graph_accepted.items() if n > 1}
    if sent_twice:
        violations.append(
            f"{len(sent_twice)} outbound messages sent more than once, e.g. {sorted(sent_twice)[:3]}"
        )
    outbound_ids = {mid for mid, *_ in facts.outbound}
    unknown = set(facts.graph_accepted) - outbound_ids
    if unknown:
        violations.append(
            f"{len(unknown)} sends at the Graph API for no stored message, e.g. {sorted(unknown)[:3]}"
        )
    phantom = [
        mid
        for mid, _, status, _, _ in facts.outbound
        if status in OUTBOUND_DONE and not facts.graph_accepted.get(mid)
    ]
    if phantom:
        violations.append(
            f"{len(phantom)} outbound messages marked sent that never reached the Graph API, "
            f"e.g. {phantom[:3]}"
        )
    out_stuck = [mid for mid, _, status, _, _ in facts.outbound if status in PENDING]
    if out_stuck:
        violations.append(f"{len(out_stuck)} outbound messages left queued/sending, e.g. {out_stuck[:3]}")

    out_statuses = Counter(status for _, _, status, _, _ in facts.outbound)
    counts = {
        "wamids_sent": len(facts.wamids_sent),
        "wamids_acked": len(facts.wamids_acked),
        "inbound_stored": len(facts.inbound),
        "inbound_distinct": len(stored),
        "inbound_by_status": dict(sorted(statuses.items())),
        "inbound_failed_reasons": dict(
            Counter(reason_group(e) for _, s, e in facts.inbound if s == "failed").most_common()
        ),
        "inbound_skipped_reasons": dict(
            Counter(reason_group(e) for _, s, e in facts.inbound if s == "skipped").most_common()
        ),
        "outbound_total": len(facts.outbound),
        "outbound_by_author": dict(sorted(Counter(a for _, a, _, _, _ in facts.outbound).items())),
        "outbound_by_status": dict(sorted(out_statuses.items())),
        "outbound_failed_reasons": dict(
            Counter(reason_group(e) for _, _, s, e, _ in facts.outbound if s == "failed").most_common()
        ),
        "outbound_failed_but_accepted": sum(
            1 for mid, _, s, _, _ in facts.outbound if s == "failed" and facts.graph_accepted.get(mid)
        ),
        "graph_send_attempts": sum(facts.graph_attempts.values()),
        "graph_sends_accepted": sum(facts.graph_accepted.values()),
        "max_sends_per_message": max(facts.graph_accepted.values(), default=0),
        "max_ai_replies_per_turn": max(replies_per_trigger.values(), default=0),
        # Answered messages a later turn's prompt showed again as not yet answered.
        "inbound_reshown_after_answer": sum(1 for n in replies_per_token.values() if n > 1),
    }
    return counts, violations


# --- Processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Service:
    """A subprocess in its own process group, so a kill takes its children with it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0
        # Once stopped for good, nothing (a supervisor thread) may start it again.
        self.retired = False

    def start(self) -> Service:
        if self.retired:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 (the child owns it)
        log.write(f"\n--- start {self.starts + 1} at {time.strftime('%H:%M:%S')} ---\n".encode())
        log.flush()
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        self.starts += 1
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self, sig: int = signal.SIGKILL, wait: float = 15.0) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; for good."""
        self.retired = True
        if self.alive:
            self.kill(signal.SIGTERM, wait=10.0)
        elif self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # children of an exited leader
                os.killpg(self.process.pid, signal.SIGKILL)


def wait_until(predicate, *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: S110 (not up yet)
            pass
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def http_ok(url: str) -> bool:
    import requests

    return requests.get(url, timeout=2).status_code < 500


# --- Fakes that fail on purpose ----------------------------------------------------------


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
