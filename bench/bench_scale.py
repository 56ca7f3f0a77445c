"""Benchmark 4, scale: the hot read paths on an almost empty database, then on a full one.

Rows are generated in PostgreSQL itself (INSERT … SELECT generate_series, with
UUIDv7-like ids made in SQL), respecting the schema and its constraints:
contacts, one conversation each, `--messages` messages spread over
conversations of 10 messages, one LLM call per 5 messages, across 50
businesses created through the product's services. Of each business's
conversations one in 5 is closed, one in 20 (all closed) was handed to a
person once, and one in 100 is open, paused and waiting for a person now. The
"empty" measurement has one conversation per business; then the database is
filled and vacuumed (VACUUM ANALYZE, as autovacuum would).

Each endpoint (bench/scale_paths.py: the API's lists with each filter, the
admin inbox for a superuser and for one business's staff, with each filter and
the needs-human badge) is timed in this process through Django's test client
(the full middleware and DRF stack, no network): the median of `--requests`
requests after warming up. The queries each endpoint runs on the full database
are EXPLAINed (ANALYZE, BUFFERS); a Seq Scan on messages, conversations or LLM
calls fails the "no sequential scans" goal (searches are reported, not judged).

    python -m bench.bench_scale [--messages 200000]      # make bench default
    python -m bench.bench_scale --messages 1000000        # the full size (issue 6)
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from typing import Any

from bench import scale_paths
from bench.loadgen import result_write, table_print
from bench.scale_paths import Endpoint
from bench.stack import bench_stack, tenants_create

NAME = "scale"
GOAL_FACTOR = 10.0
BUSINESSES = 50
PER_CONVERSATION = 10
MESSAGES_PER_LLM_CALL = 5
HOT_TABLES = ("conversations_message", "conversations_conversation", "conversations_llmcall")
SCAN_RE = re.compile(
    r"(?:Parallel )?(?:Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan|Bitmap Index Scan)"
    r"(?: Backward)?(?: using \w+)? on \w+"
)

UUID7_SQL = """
CREATE OR REPLACE FUNCTION bench_uuid7(ts timestamptz) RETURNS uuid AS $$
  -- 48 bits of Unix milliseconds, then random bits with the version (7) and variant set.
  SELECT encode(
    set_bit(set_bit(set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send((extract(epoch FROM ts) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
      52, 1), 53, 1), 54, 0), 55, 1),
    'hex')::uuid
$$ LANGUAGE sql VOLATILE;
"""

BUSINESSES_SQL = """
CREATE TEMP TABLE IF NOT EXISTS bench_biz AS
SELECT (row_number() OVER (ORDER BY b.created_at, b.id) - 1)::int AS n,
       b.id AS business_id, ca.id AS account_id, s.id AS stage_id
FROM businesses_business b
JOIN channels_app_channelaccount ca ON ca.business_id = b.id
JOIN stages_stage s ON s.business_id = b.id AND s.is_initial;
"""

CONVERSATIONS_SQL = """
DROP TABLE IF EXISTS bench_conv;
CREATE TEMP TABLE bench_conv AS
SELECT g AS n, g / %(businesses)s AS ordinal, b.business_id, b.account_id, b.stage_id,
       now() - interval '1 hour' - random() * interval '30 days' AS ts
FROM generate_series(%(first)s, %(last)s) g
JOIN bench_biz b ON b.n = g %% %(businesses)s;
ALTER TABLE bench_conv ADD COLUMN conv_id uuid, ADD COLUMN contact_id uuid;
UPDATE bench_conv SET conv_id = bench_uuid7(ts), contact_id = bench_uuid7(ts);

INSERT INTO conversations_contact (id, created_at, updated_at, external_id, name, username, business_id,
                                   channel_account_id)
SELECT contact_id, ts, ts, 'scale-' || n, 'Customer ' || n, '', business_id, account_id FROM bench_conv;

INSERT INTO conversations_conversation (
    id, created_at, updated_at, status, ai_mode, needs_human, handoff_reason, collected_data,
    collected_data_sources, ai_turns, last_inbound_at, last_message_at, closed_at, business_id,
    channel_account_id, contact_id, stage_id)
SELECT conv_id, ts, ts,
       CASE WHEN ordinal %% 5 = 4 THEN 'closed' ELSE 'open' END,
       CASE WHEN ordinal %% 100 = 1 THEN 'paused' ELSE 'auto' END,
       ordinal %% 20 = 4 OR ordinal %% 100 = 1,
       CASE WHEN ordinal %% 20 = 4 OR ordinal %% 100 = 1 THEN 'Asked for a person' ELSE '' END,
       '{"party_size": 4}', '{}', %(per)s / 2,
       ts + (%(per)s - 2) * interval '1 minute', ts + (%(per)s - 1) * interval '1 minute',
       CASE WHEN ordinal %% 5 = 4 THEN ts + interval '1 day' END,
       business_id, account_id, contact_id, stage_id
FROM bench_conv;

INSERT INTO conversations_message (
    id, created_at, updated_at, direction, author, type, text, payload, raw, external_id,
    reply_to_external_id, status, error_code, error, attempts, provider_timestamp, status_changed_at,
    business_id, channel_account_id, conversation_id, sent_by_id, stage_id)
SELECT bench_uuid7(c.ts + k * interval '1 minute'), c.ts + k * interval '1 minute',
       c.ts + k * interval '1 minute',
       CASE WHEN ordinal %% 2 = 0 THEN 'in' ELSE 'out' END,
       CASE WHEN ordinal %% 2 = 0 THEN 'customer' ELSE 'ai' END,
       'text',
       CASE WHEN ordinal %% 2 = 0 THEN 'Hi, could I book a table for four on Friday at eight? Thanks!'
            ELSE 'Of course! Friday at 8 pm for four works. May I have a name for the booking?' END,
       '{}', '{}', 'wamid.scale.' || c.n || '.' || k, '',
       CASE WHEN ordinal %% 2 = 0 THEN 'answered' ELSE 'delivered' END, '', '', 1,
       c.ts + k * interval '1 minute', c.ts + k * interval '1 minute',
       c.business_id, c.account_id, c.conv_id, NULL, c.stage_id
FROM bench_conv c CROSS JOIN generate_series(0, %(per)s - 1) k;

INSERT INTO conversations_llmcall (
    id, created_at, updated_at, template_version, purpose, model, base_url_host, request_messages,
    response_text, response_json, prompt_tokens, completion_tokens, cached_tokens, latency_ms, cost,
    outcome, error, dry_run, business_id, conversation_id, stage_id, template_id, message_id)
SELECT bench_uuid7(c.ts + k * interval '1 minute'), c.ts + k * interval '1 minute',
       c.ts + k * interval '1 minute', NULL,
       CASE WHEN ordinal %% 2 = 0 THEN 'selection' ELSE 'response' END, 'gpt-4o-mini', 'api.openai.com',
       '[{"role": "user", "content": "Hi, could I book a table?"}]', 'Of course!', NULL,
       850, 40, 512, 420, 0.000150, 'ok', '', false, c.business_id, c.conv_id, c.stage_id, NULL, NULL
FROM bench_conv c CROSS JOIN generate_series(0, %(llm_per)s - 1) k;
"""


def _generate(*, first: int, conversations: int) -> float:
    """Insert `conversations` conversations (ordinals from `first`) with their rows; seconds taken."""
    from django.db import connection, transaction

    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(UUID7_SQL)
        cursor.execute(BUSINESSES_SQL)
        cursor.execute(
            CONVERSATIONS_SQL,
            {
                "first": first,
                "last": first + conversations - 1,
                "businesses": BUSINESSES,
                "per": PER_CONVERSATION,
                "llm_per": max(1, PER_CONVERSATION // MESSAGES_PER_LLM_CALL),
            },
        )
    with connection.cursor() as cursor:
        # What autovacuum keeps a live database at (it vacuums insert-only tables too):
        # statistics and a visibility map, so index-only scans are possible.
        cursor.execute("VACUUM ANALYZE")
    return time.monotonic() - started


def _counts() -> dict[str, int]:
    from django.db import connection

    counts = {}
    with connection.cursor() as cursor:
        for table in ("conversations_contact", *HOT_TABLES):
            cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (a constant)
            counts[table] = cursor.fetchone()[0]
    return counts


def _time(endpoints: dict[str, Endpoint], clients: dict[str, Any], *, requests: int) -> dict[str, dict]:
    results = {}
    for label, endpoint in endpoints.items():
        client = clients[endpoint.client]
        for _ in range(3):  # warm: caches, code paths, buffers
            response = client.get(endpoint.path)
            if response.status_code != 200:
                raise RuntimeError(f"{label}: {endpoint.path} answered {response.status_code}")
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            client.get(endpoint.path)
            samples.append((time.perf_counter() - started) * 1000)
        results[label] = {"path": endpoint.path, "median_ms": round(statistics.median(samples), 2)}
    return results


def plan_scans(plan: str) -> list[str]:
    """The scan nodes of a text plan, e.g. "Index Scan using conv_activity on conversations_conversation"."""
    return [" ".join(m.group(0).split()) for m in SCAN_RE.finditer(plan)]


def plan_seq_scans(plan: str) -> list[str]:
    return sorted(set(re.findall(r"Seq Scan on (\w+)", plan)) & set(HOT_TABLES))


def _explain(endpoints: dict[str, Endpoint], clients: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """EXPLAIN (ANALYZE, BUFFERS) of every query an endpoint runs on the hot tables."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    plans: dict[str, list[dict[str, Any]]] = {}
    for label, endpoint in endpoints.items():
        with CaptureQueriesContext(connection) as ctx:
            clients[endpoint.client].get(endpoint.path)
        plans[label] = []
        for query in ctx.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT") or not any(t in sql for t in HOT_TABLES):
                continue
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
            time_ms = re.search(r"Execution Time: ([\d.]+) ms", plan)
            plans[label].append(
                {
                    "sql": sql,
                    "plan": plan,
                    "scans": plan_scans(plan),
                    "seq_scans_on_hot_tables": plan_seq_scans(plan),
                    "execution_ms": float(time_ms.group(1)) if time_ms else None,
                }
            )
    return plans


def run(*, messages: int, requests: int) -> dict[str, Any]:
    conversations = max(BUSINESSES, messages // PER_CONVERSATION)
    with bench_stack(llm=False):
        tenants = tenants_create(BUSINESSES, prefix="Scale")
        tenant = tenants[0]
        _generate(first=0, conversations=BUSINESSES)
        empty_counts = _counts()
        clients = scale_paths.clients(tenant.business_id, tenant.api_key)
        endpoints = scale_paths.endpoints(tenant.business_id)
        empty = _time(endpoints, clients, requests=requests)
        print(f"  empty: {empty_counts}", flush=True)
        fill_seconds = _generate(first=BUSINESSES, conversations=conversations - BUSINESSES)
        full_counts = _counts()
        print(f"  filled in {fill_seconds:.0f} s: {full_counts}", flush=True)
        endpoints = scale_paths.endpoints(tenant.business_id)
        full = _time(endpoints, clients, requests=requests)
        plans = _explain(endpoints, clients)

    rows = []
    for label, endpoint in endpoints.items():
        ratio = full[label]["median_ms"] / empty[label]["median_ms"]
        seq = sorted({t for p in plans[label] for t in p["seq_scans_on_hot_tables"]})
        rows.append(
            {
                "endpoint": label,
                "kind": endpoint.kind,
                "path_full": full[label]["path"],
                "empty_ms": empty[label]["median_ms"],
                "full_ms": full[label]["median_ms"],
                "ratio": round(ratio, 2),
                "queries_on_hot_tables": len(plans[label]),
                "slowest_query_ms": max((p["execution_ms"] or 0 for p in plans[label]), default=None),
                "seq_scans": seq,
            }
        )
    judged = [r for r in rows if r["kind"] != scale_paths.SEARCH]
    return {
        "name": NAME,
        "config": {
            "messages": messages,
            "conversations": conversations,
            "businesses": BUSINESSES,
            "requests_per_endpoint": requests,
            "client": "Django test client in-process (full middleware + DRF, no network)",
            "fill_seconds": round(fill_seconds, 1),
        },
        "counts": {"empty": empty_counts, "full": full_counts},
        "rows": rows,
        "plans": plans,
        "summary": {
            "worst_ratio": max(r["ratio"] for r in judged),
            "seq_scans": sorted({t for r in judged for t in r["seq_scans"]}),
            "endpoints_with_seq_scans": [r["endpoint"] for r in judged if r["seq_scans"]],
            "searches_with_seq_scans": [r["endpoint"] for r in rows if r["seq_scans"] and r not in judged],
        },
        "goals": {
            "each <= 10x its empty-database latency": all(r["ratio"] <= GOAL_FACTOR for r in judged),
            "no seq scan on messages/conversations/LLM calls": not any(r["seq_scans"] for r in judged),
        },
    }


def report(result: dict[str, Any], *, plans: bool = True) -> None:
    if plans:
        for label, queries in result["plans"].items():
            for query in queries:
                print(f"--- {label}: {query['sql'][:300]}")
                print(query["plan"])
    table_print(
        ["endpoint", "empty ms", "full ms", "full/empty", "hot queries", "slowest query ms", "seq scans"],
        [
            [
                r["endpoint"] + (" (search, not judged)" if r["kind"] == scale_paths.SEARCH else ""),
                r["empty_ms"],
                r["full_ms"],
                r["ratio"],
                r["queries_on_hot_tables"],
                r["slowest_query_ms"],
                ", ".join(r["seq_scans"]) or "none",
            ]
            for r in result["rows"]
        ],
    )
    print(result["config"], result["counts"]["full"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=15)
    args = parser.parse_args()
    result = run(messages=args.messages, requests=args.requests)
    report(result)
    result_write(NAME, result)


if __name__ == "__main__":
    main()
