"""What the benchmarks read from /proc: CPU and memory of process groups and of the machine.

CPU seconds are robust to a busy machine, unlike wall-clock rates: they are what a
process spent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Process:
    pid: str
    comm: str
    pgrp: int
    cpu_ticks: int  # user + system


def processes() -> list[Process]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # After "(comm)": state, ppid, pgrp, …; utime and stime are fields 14 and 15.
        fields = stat.rsplit(")", 1)[1].split()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        found.append(Process(entry, comm, int(fields[2]), int(fields[11]) + int(fields[12])))
    return found


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in a process group."""
    return sum(p.cpu_ticks for p in processes() if p.pgrp == pgid) / TICKS


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process on the machine (the bench is the only load on it)."""
    return sum(p.cpu_ticks for p in processes() if p.comm.startswith("postgres")) / TICKS


def group_rss_mb(pgid: int) -> float:
    """Resident memory of a process group, in MB."""
    total = 0
    for process in processes():
        if process.pgrp != pgid:
            continue
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total / 1024


def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)
