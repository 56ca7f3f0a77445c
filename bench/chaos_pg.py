"""A private PostgreSQL cluster for the fault-injection run (`python -m bench.chaos`).

The run stops PostgreSQL mid-run; the machine's shared server is never touched. The
cluster lives in a folder of its own (kept between runs, so the migrated template
database is reused), listens on a free port of 127.0.0.1 and its own socket folder,
and is started and stopped with the server's own `pg_ctl`. PostgreSQL refuses to run
as root: as root, its commands run as the `postgres` user.
"""

# The commands run are our own.
# ruff: noqa: S603

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import time
from pathlib import Path


def pg_bindir() -> Path | None:
    """The newest installed server's bin folder (Debian: /usr/lib/postgresql/<version>/bin)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


class PrivateCluster:
    """initdb once, then start / stop (immediate: a crash, as a lost server looks) / start again."""

    def __init__(self, directory: Path, port: int, bindir: Path) -> None:
        self.directory, self.port, self.bindir = directory, port, bindir
        self.data = directory / "data"
        self.log = directory / "postgres.log"
        self._as_postgres = os.geteuid() == 0

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    def ensure(self) -> PrivateCluster:
        """Create the cluster unless the folder already holds one."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            shutil.chown(self.directory, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"
            )
        return self

    def start(self, timeout: float = 60.0) -> None:
        # fsync off: a stopped server loses nothing the OS already has, and the run is I/O-light.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        self.wait_ready(timeout)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"the private PostgreSQL did not accept connections within {timeout:.0f} s")

    @property
    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0
