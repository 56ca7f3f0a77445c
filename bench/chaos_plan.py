"""What the fault-injection run sends, and when it breaks things (`python -m bench.chaos`).

Pure and seeded: the customer messages (with the tokens the fake LLM echoes),
their WhatsApp webhook bodies and signatures, and the worker-kill schedule.
Unit-tested in tests/bench/test_chaos_smoke.py.
"""

# Seeded pseudo-randomness makes a run reproducible.
# ruff: noqa: S311

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

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
    *,
    messages: int,
    contacts: int,
    rate: float,
    duplicate_rate: float = 0.2,
    seed: int = 1,
    waves: Sequence[tuple[float, int]] = (),
) -> list[Delivery]:
    """`messages` deliveries at a steady `rate` per second over `contacts` customers.

    A `duplicate_rate` share is delivered twice: half of those concurrently,
    half again 0.5-10 s later (Meta redelivers at least once). Each wave `(at, size)`
    adds `size` messages from as many different customers, all posted at `at`: a
    crowd of turns in flight at once (numbered after the steady ones).
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
    seq = messages
    for at, size in waves:
        for contact in rng.sample(range(contacts), min(size, contacts)):
            token = message_token(contact=contact, seq=seq)
            wamid = f"wamid.chaos.{seed}.{seq}"
            plan.append(Delivery(at=at, seq=seq, contact=contact, wamid=wamid, text=f"And now {token}"))
            seq += 1
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
