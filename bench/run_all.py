"""`make bench`: the six benchmarks, one process each, then a summary table.

Each benchmark runs in its own process (its own stack, database and Django
settings) and writes bench/results/<name>.json; this writes
bench/results/summary.json with every goal and the figures behind it.

    python -m bench.run_all [--quick] [--only ingest,scale] [--messages N] [--profile]

`--quick` is a smoke-sized run (a minute or two); the defaults take a few
minutes on a 2-core machine. The full-size scale run is
`python -m bench.bench_scale --messages 1000000`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.loadgen import RESULTS_DIR, result_write, table_print
from bench.stack import ROOT

BENCHES = ("ingest", "turn_latency", "turn_cost", "scale", "burst", "crash")


def _command(name: str, args: argparse.Namespace) -> list[str]:
    module = {
        "ingest": "bench.bench_ingest",
        "turn_latency": "bench.bench_turn_latency",
        "turn_cost": "bench.bench_turn_cost",
        "scale": "bench.bench_scale",
        "burst": "bench.bench_burst",
        "crash": "bench.bench_crash",
    }[name]
    command = [sys.executable, "-m", module]
    if name == "ingest":
        command += ["--rates", "10,20,40" if args.quick else args.rates]
        command += ["--duration", "3" if args.quick else str(args.duration)]
    elif name == "turn_latency":
        command += ["--turns", "10" if args.quick else "30"]
    elif name == "turn_cost":
        command += ["--repeat", "1" if args.quick else "3"]
        command += ["--lengths", "10,100" if args.quick else "10,100,1000"]
        command += ["--cpu-turns", "10" if args.quick else "40", "--cpu-rounds", "1" if args.quick else "3"]
        if args.profile:
            command.append("--profile")
    elif name == "scale":
        command += ["--messages", str(20_000 if args.quick else args.messages)]
        command += ["--requests", "5" if args.quick else "15"]
    elif name == "burst":
        command += ["--customers", "40" if args.quick else "200"]
    elif name == "crash" and args.quick:
        command += ["--customers", "40", "--no-baseline", "--watch", "60"]
    return command


def summary_rows(results: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """One row per goal: benchmark, goal, the figure, met or not."""
    rows: list[list[Any]] = []
    for name, result in results.items():
        if "error" in result:
            rows.append([name, "(did not run)", result["error"][:60], "no"])
            continue
        figures = ", ".join(
            f"{k}={v}" for k, v in result.get("summary", {}).items() if not isinstance(v, list)
        )
        for goal, met in result.get("goals", {}).items():
            rows.append([name, goal, figures, "yes" if met else "no"])
            figures = ""
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHES))
    parser.add_argument("--rates", default="10,20,40,80,160,240,320")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()

    if args.quick:
        # Smoke-sized figures go to bench/results/quick/, next to (not over) the real ones.
        os.environ["BENCH_RESULTS_DIR"] = str(RESULTS_DIR / "quick")
    results_dir = Path(os.environ.get("BENCH_RESULTS_DIR") or RESULTS_DIR)
    results: dict[str, dict[str, Any]] = {}
    started = time.monotonic()
    for name in [n for n in args.only.split(",") if n]:
        if name not in BENCHES:
            parser.error(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
        print(f"== {name}", flush=True)
        command = _command(name, args)
        completed = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603 (our own command line)
        path = results_dir / f"{name}.json"
        if completed.returncode != 0 or not path.exists():
            results[name] = {"error": f"exit {completed.returncode}: {' '.join(command[1:])}"}
            continue
        results[name] = json.loads(path.read_text())

    print(f"\n== summary ({time.monotonic() - started:.0f} s)")
    table_print(["benchmark", "goal", "figures", "met"], summary_rows(results))
    result_write(
        "summary",
        {
            "command": " ".join(["python -m bench.run_all", *sys.argv[1:]]),
            "goals": {name: r.get("goals", r.get("error")) for name, r in results.items()},
            "summaries": {name: r.get("summary") for name, r in results.items()},
        },
        directory=results_dir,
    )
    if any("error" in r for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
