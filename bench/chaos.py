"""Fault injection: nothing lost, nothing twice, while the machinery breaks underneath.

    python -m bench.chaos [--messages 2000] [--seed 1] [--rate 5]

Starts its own isolated stack: a private Redis on a free port (restarted once
mid-run), a private PostgreSQL cluster on a free port (stopped for about 10 s
mid-run, as a crash would), gunicorn serving the app, the production Celery
worker (threads; SIGKILLed with its process group at random moments, and once
while a crowd of customers' turns is in flight, then restarted), a fake LLM
answering after --llm-delay and failing 10 % of requests (500, 429, or slower
than LLM_TIMEOUT_SECONDS) and a fake Graph API failing 10 % of sends (HTTP 500,
Graph error 130429) that counts sends per message id. It posts signed WhatsApp
webhooks (20 % delivered twice, half of those concurrently) at a steady rate,
retrying any answer but a 200 as Meta does, runs the sweeper every few seconds
(what Celery beat does in production), waits until nothing is pending, then
checks the database against the invariants in bench/chaos_invariants.evaluate,
prints a table, writes bench/results/chaos.json, and exits 1 when one is violated.
"""

# Seeded pseudo-randomness makes a run reproducible.
# ruff: noqa: S311

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.chaos_fakes import chaos_graph, chaos_llm
from bench.chaos_invariants import evaluate
from bench.chaos_load import LoadGen
from bench.chaos_pg import PrivateCluster, pg_bindir
from bench.chaos_plan import kill_schedule, plan_deliveries
from bench.chaos_report import extra_counts, facts_gather, report
from bench.chaos_stack import (
    DEFAULT_DATABASE_NAME,
    LLM_TIMEOUT,
    Chaos,
    Faults,
    Sweeper,
    _db_name,
    child_env,
    database_fresh,
    drain,
    world_create,
)
from bench.chaos_support import (
    PYTHON,
    ROOT,
    Service,
    db_call,
    free_port,
    http_ok,
    redis_ping,
    say,
    wait_until,
)

RESULTS = ROOT / "bench" / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="distinct inbound messages (default 2000)")
    parser.add_argument("--contacts", type=int, default=200, help="customers they come from (default 200)")
    parser.add_argument("--rate", type=float, default=5.0, help="new messages per second (default 5)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duplicates", type=float, default=0.2, help="share delivered twice (default 0.2)")
    parser.add_argument("--llm-failures", type=float, default=0.1, help="share of LLM requests failing")
    parser.add_argument("--graph-failures", type=float, default=0.1, help="share of Graph sends failing")
    parser.add_argument("--llm-retries", type=int, default=1, help="LLM_MAX_RETRIES for the run (default 1)")
    parser.add_argument(
        "--kills", type=int, default=None, help="worker SIGKILLs (default: one per ~60 s, >= 3)"
    )
    parser.add_argument(
        "--pool",
        default="threads",
        choices=["threads", "prefork"],
        help="Celery pool (default: production's)",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="Celery worker threads (default 64)")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn workers (default 3)")
    parser.add_argument(
        "--burst-window", type=int, default=0, help="the business's burst_window_seconds (default 0)"
    )
    parser.add_argument(
        "--sweep-every", type=float, default=15.0, help="seconds between sweeper runs (default 15)"
    )
    parser.add_argument("--worker-loglevel", default="WARNING")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for quiescence")
    parser.add_argument("--llm-delay", type=float, default=1.5, help="the fake LLM's latency (default 1.5 s)")
    parser.add_argument(
        "--crowd", type=int, default=80, help="customers writing at once before one kill (default 80)"
    )
    parser.add_argument(
        "--crowd-in-flight", type=int, default=50, help="turns in flight that kill waits for (default 50)"
    )
    parser.add_argument(
        "--postgres-outage", type=float, default=10.0, help="seconds PostgreSQL is down (0: none)"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("CHAOS_DATABASE_URL"),
        help="an existing server's database instead of the private cluster (no PostgreSQL outage then)",
    )
    parser.add_argument(
        "--pg-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / f"icmp-chaos-pg-{os.getuid()}",
        help="the private cluster's folder, kept between runs",
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "chaos.json")
    return parser.parse_args(argv)


def faults_plan(args: argparse.Namespace) -> Faults:
    send_seconds = args.messages / args.rate
    rng = random.Random(args.seed)
    redis_at = round(send_seconds * rng.uniform(0.4, 0.6), 1)
    kills = args.kills if args.kills is not None else max(3, round(send_seconds / 60))
    kills_at = kill_schedule(duration=send_seconds, kills=kills, seed=args.seed)
    crowd_at = None
    if args.crowd > 0:
        # Half-way between two scheduled kills, so no other kill empties the worker just before.
        crowd_at = round((kills_at[0] + kills_at[1]) / 2 if len(kills_at) > 1 else send_seconds / 2, 1)
    postgres_at = round(send_seconds * rng.uniform(0.7, 0.8), 1) if args.postgres_outage > 0 else None
    return Faults(
        kills_at=kills_at,
        redis_at=redis_at,
        crowd_kill_at=crowd_at,
        crowd=args.crowd_in_flight,
        postgres_at=postgres_at,
        postgres_outage=args.postgres_outage,
    )


def fault_checks(
    args: argparse.Namespace, chaos: Chaos, loadgen: LoadGen, start: float, faults: Faults
) -> tuple[dict, list[str]]:
    """What the faults met (turns in flight at the kills, answers during the outage) and what
    went wrong around them."""
    violations = []
    most = max((kill.get("turns", 0) for kill in chaos.kills_in_flight), default=0)
    if faults.crowd_kill_at is not None and most < args.crowd_in_flight:
        violations.append(f"no worker kill with {args.crowd_in_flight} turns in flight (at most {most})")
    answers = Counter(status for _, status in loadgen.failed_at)
    wrong = {status: n for status, n in answers.items() if status.isdigit() and not status.startswith("5")}
    if wrong:
        violations.append(f"webhooks answered neither 200 nor 5xx: {wrong}")
    outages = []
    for outage in chaos.postgres_outages:
        since, until = start + outage["from_s"], start + outage["to_s"] + 30
        during = Counter(status for at, status in loadgen.failed_at if since <= at <= until)
        restarted = [
            event
            for event in chaos.events
            if "exited on its own" in event["event"] and outage["from_s"] <= event["t"] <= outage["to_s"] + 60
        ]
        if restarted:
            violations.append(f"processes exited after the PostgreSQL outage: {restarted}")
        outages.append({**outage, "webhook_errors_until_30_s_after": dict(during)})
    if faults.postgres_at is not None and chaos.postgres is not None and not outages:
        violations.append("PostgreSQL was never stopped")
    facts = {
        "kills_in_flight": chaos.kills_in_flight,
        "max_turns_in_flight_at_a_kill": most,
        "postgres_outages": outages,
        "webhook_errors": dict(answers),
    }
    return facts, violations


# --- Main ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="icmp-chaos-"))
    say(f"logs in {log_dir}")
    faults = faults_plan(args)
    plan = plan_deliveries(
        messages=args.messages,
        contacts=args.contacts,
        rate=args.rate,
        duplicate_rate=args.duplicates,
        seed=args.seed,
        waves=[(max(0.0, faults.crowd_kill_at - 1.0), args.crowd)] if faults.crowd_kill_at else [],
    )

    llm = chaos_llm(failure_rate=args.llm_failures, timeout_delay=LLM_TIMEOUT + 1.5, seed=args.seed).start()
    llm.delay = args.llm_delay  # on top of any scripted delay
    graph = chaos_graph(failure_rate=args.graph_failures, seed=args.seed).start()
    redis_port, web_port = free_port(), free_port()
    postgres = None
    if args.database_url is None:
        bindir = pg_bindir()
        if bindir is None:
            raise SystemExit("no PostgreSQL server binaries (pg_ctl) found: pass --database-url")
        postgres = PrivateCluster(args.pg_dir, free_port(), bindir).ensure()
        postgres.start()
        say(f"private PostgreSQL in {args.pg_dir} on port {postgres.port}")
        args.database_url = postgres.url(DEFAULT_DATABASE_NAME)
    env = child_env(args, redis_port=redis_port, llm_url=llm.base_url, graph_url=graph.url)
    services: list[Service] = []
    sweeper: Sweeper | None = None
    try:
        say(f"fresh database {_db_name(args.database_url)}")
        database_fresh(args.database_url, env)

        redis = Service(
            "redis",
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            env,
            log_dir,
        ).start()
        services.append(redis)
        wait_until(lambda: redis_ping(redis_port), timeout=20, what="redis")

        os.environ.update(env)
        import django

        django.setup()
        world_create(burst_window=args.burst_window)

        web = Service(
            "web",
            [
                PYTHON,
                "-m",
                "gunicorn",
                "icmp.wsgi:application",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                str(args.web_workers),
                "--timeout",
                "30",
                "--graceful-timeout",
                "5",
            ],
            env,
            log_dir,
        ).start()
        worker = Service(
            "worker",
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "icmp",
                "worker",
                f"--pool={args.pool}",
                f"--concurrency={args.concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                f"--loglevel={args.worker_loglevel}",
            ],
            env,
            log_dir,
        ).start()
        services += [web, worker]
        wait_until(lambda: http_ok(f"http://127.0.0.1:{web_port}/ping"), timeout=60, what="gunicorn")

        sweeper = Sweeper(interval=args.sweep_every)
        sweeper.start()
        chaos = Chaos(worker=worker, redis=redis, web=web, redis_port=redis_port, postgres=postgres)
        loadgen = LoadGen(f"http://127.0.0.1:{web_port}/webhooks/whatsapp/", plan)
        stop = threading.Event()
        say(
            f"sending {len(plan)} messages from {args.contacts} contacts at {args.rate}/s "
            f"(~{args.messages / args.rate:.0f} s); worker kills at {faults.kills_at} s, "
            f"{args.crowd} customers at once and a kill at {faults.crowd_kill_at} s, Redis restart "
            f"at {faults.redis_at} s, PostgreSQL down at {faults.postgres_at if postgres else None} s"
        )
        start = time.monotonic()
        chaos_thread = threading.Thread(
            target=chaos.run, args=(start, faults, stop, args.seed), name="chaos", daemon=True
        )
        chaos_thread.start()
        loadgen.run(start, stop)
        say(f"all deliveries acknowledged or given up after {time.monotonic() - start:.0f} s; draining")
        stop.set()
        chaos_thread.join()
        quiescent, drained = drain(timeout=args.drain_timeout, chaos=chaos, start=start)
        time.sleep(1.0)  # a send in flight reaches the fake Graph API
        sweeper.stop.set()
        sweeper.join()
        for service in (worker, web, redis):
            service.stop()

        counts, violations = evaluate(db_call(lambda: facts_gather(plan, loadgen, graph)))
        counts.update(db_call(extra_counts))
        met, fault_violations = fault_checks(args, chaos, loadgen, start, faults)
        violations += fault_violations
        if not quiescent:
            violations.append(f"not quiescent after {args.drain_timeout:.0f} s of draining")
        result = {
            "command": "python -m bench.chaos " + " ".join(argv if argv is not None else sys.argv[1:]),
            "config": {
                "messages": args.messages,
                "crowd": args.crowd,
                "contacts": args.contacts,
                "rate_per_second": args.rate,
                "seed": args.seed,
                "duplicate_share": args.duplicates,
                "llm_failure_share": args.llm_failures,
                "graph_failure_share": args.graph_failures,
                "llm_max_retries": args.llm_retries,
                "llm_timeout_seconds": LLM_TIMEOUT,
                "llm_delay_seconds": args.llm_delay,
                "postgres": "private cluster" if postgres else args.database_url,
                "postgres_outage_seconds": args.postgres_outage if postgres else 0,
                "worker_pool": args.pool,
                "worker_concurrency": args.concurrency,
                "burst_window_seconds": args.burst_window,
                "web_workers": args.web_workers,
                "turn_lease_seconds": int(env["TURN_LEASE_SECONDS"]),
                "sweeper_every_seconds": args.sweep_every,
                "sweeper_stuck_after_seconds": int(env["SWEEPER_STUCK_AFTER_SECONDS"]),
                "sweeper_sending_unknown_after_seconds": int(env["SWEEPER_SENDING_UNKNOWN_AFTER_SECONDS"]),
            },
            "counts": counts,
            "load": loadgen.summary(),
            "faults": {
                "worker_kills": chaos.kills,
                "redis_restarts": chaos.redis_restarts,
                **met,
                "unexpected_restarts": dict(chaos.unexpected_restarts),
                "llm_failures": dict(llm.failures),
                "graph_failures": dict(graph.failures),
                "events": chaos.events,
            },
            "sweeper": {
                "runs": sweeper.runs,
                "requeued": dict(sweeper.requeued),
                "errors": dict(sweeper.errors),
            },
            "quiescent": quiescent,
            "drain_seconds": round(drained, 1),
            "duration_seconds": round(time.monotonic() - began, 1),
            "violations": violations,
            "logs": str(log_dir),
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print()
        print(report(result))
        print(f"\nwritten to {args.output}")
        return 1 if violations else 0
    finally:
        if sweeper is not None:
            sweeper.stop.set()
        for service in reversed(services):
            service.stop()
        llm.stop()
        graph.stop()
        if postgres is not None:
            from django.db import connections

            connections.close_all()
            postgres.stop("fast")


if __name__ == "__main__":
    sys.exit(main())
