"""The Procfile is the production set-up the README describes: web on $PORT, the worker, beat."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def processes() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_procfile_runs_web_on_port_the_worker_and_beat():
    found = processes()

    assert set(found) == {"web", "worker", "beat"}
    assert found["web"].startswith("gunicorn icmp.wsgi:application ") and "$PORT" in found["web"].replace(
        "${PORT", "$PORT"
    )
    # The worker's pool and concurrency come from the settings (CELERY_WORKER_POOL, _CONCURRENCY).
    assert found["worker"].startswith("celery -A icmp worker") and "--pool" not in found["worker"]
    assert found["beat"].startswith("celery -A icmp beat")


def test_the_readme_documents_the_same_commands():
    readme = (ROOT / "README.md").read_text()
    for command in processes().values():
        assert command in readme, command
