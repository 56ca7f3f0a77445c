"""The fault-injection run's invariants: nothing lost, nothing twice (`python -m bench.chaos`).

Pure: `evaluate` judges the Facts the run gathered; unit-tested in
tests/bench/test_chaos_smoke.py.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.chaos_plan import tokens_in, trigger_in

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
