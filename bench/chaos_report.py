"""The fault-injection run's facts (from the database and the fakes) and its printed report."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.chaos_invariants import Facts
from bench.chaos_load import LoadGen
from bench.chaos_plan import Delivery


def facts_gather(plan: list[Delivery], loadgen: LoadGen, graph: Any) -> Facts:
    from conversations.models import Author, Direction, Message

    inbound = list(
        Message.objects.filter(direction=Direction.IN, author=Author.CUSTOMER).values_list(
            "external_id", "status", "error"
        )
    )
    outbound = [
        (str(pk), author, status, error, text)
        for pk, author, status, error, text in Message.objects.filter(direction=Direction.OUT).values_list(
            "pk", "author", "status", "error", "text"
        )
    ]
    return Facts(
        wamids_sent={d.wamid for d in plan},
        wamids_acked=set(loadgen.acked),
        inbound=inbound,
        outbound=outbound,
        graph_accepted=dict(graph.accepted),
        graph_attempts=dict(graph.attempts),
        wamid_tokens={d.wamid: d.text.rsplit(" ", 1)[1] for d in plan},
    )


def extra_counts() -> dict[str, Any]:
    from conversations.models import Conversation, LLMCall

    return {
        "conversations": Conversation.objects.count(),
        "conversations_needing_staff": Conversation.objects.filter(needs_human=True).count(),
        "conversations_ai_paused": Conversation.objects.filter(ai_mode="paused").count(),
        "llm_calls_by_outcome": dict(Counter(LLMCall.objects.values_list("outcome", flat=True))),
    }


def table(rows: list[tuple[str, Any]]) -> str:
    width = max(len(name) for name, _ in rows)
    lines = []
    for name, value in rows:
        if isinstance(value, dict):
            value = "; ".join(f"{k} = {v}" for k, v in value.items()) or "-"
        lines.append(f"{name.ljust(width)}  {value}")
    return "\n".join(lines)


def _outages(outages: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{o['from_s']}-{o['to_s']} s (down {o['down_s']} s), webhook errors until 30 s after: "
        + (", ".join(f"{k} = {v}" for k, v in o["webhook_errors_until_30_s_after"].items()) or "none")
        for o in outages
    )


def report(result: dict[str, Any]) -> str:
    c, load = result["counts"], result["load"]
    rows: list[tuple[str, Any]] = [
        ("messages sent (distinct wamids)", c["wamids_sent"]),
        ("webhook posts (incl. duplicates, retries)", load["posts"]),
        ("webhook responses", load["responses"]),
        ("ack latency p50 / p99 (ms)", f"{load['ack_ms_p50']} / {load['ack_ms_p99']}"),
        ("inbound rows stored / distinct", f"{c['inbound_stored']} / {c['inbound_distinct']}"),
        ("inbound by status", c["inbound_by_status"]),
        ("  failed, by reason", c["inbound_failed_reasons"]),
        ("  skipped, by reason", c["inbound_skipped_reasons"]),
        ("outbound by author", c["outbound_by_author"]),
        ("outbound by status", c["outbound_by_status"]),
        ("  failed sends, by reason", c["outbound_failed_reasons"]),
        ("  failed but accepted by Graph", c["outbound_failed_but_accepted"]),
        ("Graph send attempts / accepted", f"{c['graph_send_attempts']} / {c['graph_sends_accepted']}"),
        ("max sends per message id", c["max_sends_per_message"]),
        ("max AI replies per turn", c["max_ai_replies_per_turn"]),
        ("answered msgs re-shown as unanswered", c["inbound_reshown_after_answer"]),
        (
            "conversations (needing staff, AI paused)",
            f"{c['conversations']} ({c['conversations_needing_staff']}, {c['conversations_ai_paused']})",
        ),
        ("LLM calls by outcome", c["llm_calls_by_outcome"]),
        ("injected LLM failures", result["faults"]["llm_failures"]),
        ("injected Graph failures", result["faults"]["graph_failures"]),
        ("worker SIGKILLs", result["faults"]["worker_kills"]),
        (
            "  turns in flight at each kill",
            "; ".join(f"{k['t']} s: {k.get('turns', '?')}" for k in result["faults"]["kills_in_flight"]),
        ),
        ("Redis restarts", result["faults"]["redis_restarts"]),
        ("PostgreSQL outages", _outages(result["faults"]["postgres_outages"]) or "-"),
        ("webhook answers other than 200", result["faults"]["webhook_errors"]),
        ("unexpected process restarts", result["faults"]["unexpected_restarts"]),
        ("sweeper runs (re-enqueued)", f"{result['sweeper']['runs']} ({result['sweeper']['requeued']})"),
        ("quiescent after sending", f"{result['quiescent']} ({result['drain_seconds']} s)"),
        ("duration (s)", result["duration_seconds"]),
    ]
    verdict = (
        "ALL INVARIANTS HOLD"
        if not result["violations"]
        else "VIOLATIONS:\n  " + "\n  ".join(result["violations"])
    )
    return table(rows) + "\n\n" + verdict
