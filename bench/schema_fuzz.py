"""Schemathesis against the live API: no 5xx, and every response matches the OpenAPI schema.

    python -m bench.schema_fuzz [--max-examples 20] [--seed 1] [--database-url URL]

Serves the app with gunicorn on a fresh database (a temporary SQLite file by
default; `--database-url` for PostgreSQL), creates a business with
`manage.py create_business` and a little data for it to find (a channel, a
conversation with messages), then runs `schemathesis run` on /api/schema/ with
`Authorization: Api-Key <key>` (the per-key routes /api-keys/{id}/ excepted:
revoking its own key would end the run). The hooks in bench.schema_fuzz_hooks
mix hostile input into the generated cases: bodies nested 65 to 60,000 levels
deep, lone UTF-16 surrogates, date-times at the calendar's ends with extreme
UTC offsets. Checks: not_a_server_error, response_schema_conformance,
status_code_conformance and hostile_input_is_refused (hostile input gets a 4xx
with the JSON error body, never a 2xx; a validation error for an overflowing
date names its parameter). The text report goes
to bench/results/schemathesis.txt and JUnit XML beside it; the exit code is
schemathesis's (non-zero when a check failed).
"""

# The commands run are our own (S603).
# ruff: noqa: S603

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.chaos_support import PYTHON, ROOT, Service, free_port, http_ok, wait_until

RESULTS = ROOT / "bench" / "results"
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,hostile_input_is_refused"
HOOKS = "bench.schema_fuzz_hooks"
# Deleting or revoking an API key by id would revoke the fuzzer's own key (schemathesis
# reuses ids it saw in responses) and turn the rest of the run into 401s.
EXCLUDE_PATH_REGEX = r"^/api/v1/api-keys/\{id\}/"
KEY_RE = re.compile(r"^API key: (\S+)$", re.MULTILINE)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.schema_fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=20, help="test cases per operation (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", default="2", help="schemathesis workers (default 2)")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument("--checks", default=CHECKS, help=f"schemathesis checks (default {CHECKS})")
    parser.add_argument("--phases", default="examples,coverage,fuzzing", help="schemathesis phases")
    parser.add_argument("--output", type=Path, default=RESULTS / "schemathesis.txt")
    return parser.parse_args(argv)


def say(message: str) -> None:
    print(f"[schema_fuzz {time.strftime('%H:%M:%S')}] {message}", flush=True)


def app_env(database_url: str, graph_port: int) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "CELERY_"))}
    for key in ("REDIS_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL"):
        env.pop(key, None)  # tasks in-process, AI replies off: only the API is under test
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "icmp.settings",
            "ICMP_SKIP_DOTENV": "1",
            "DEBUG": "0",
            "SECRET_KEY": "schema-fuzz-secret-key-0123456789abcdefghijklmnopqrstuvwxyz-ABCDEF",
            # base64 of "fuzz-only-field-encryption-keys!" (channel secrets at rest).
            "FIELD_ENCRYPTION_KEYS": "ZnV6ei1vbmx5LWZpZWxkLWVuY3J5cHRpb24ta2V5cyE=",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": database_url,
            # The fuzzer is one client sending thousands of requests: no throttling.
            "API_THROTTLE_RATE": "1000000/min",
            "API_ANON_THROTTLE_RATE": "1000000/min",
            # Sends (staff replies) fail fast against a closed local port instead of the internet.
            "META_GRAPH_URL": f"http://127.0.0.1:{graph_port}",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def manage(env: dict[str, str], *command: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


SEED_DATA = """
from businesses.models import Business
from channels_app.models import ChannelAccount, ChannelKind
from conversations.models import Author, Contact, Conversation, Direction, Message, MessageStatus

business = Business.objects.get(slug="fuzz-cafe")
account = ChannelAccount.objects.create(
    business=business, kind=ChannelKind.WHATSAPP, external_id="1555000FUZZ", name="Fuzz WhatsApp",
    access_token="EAAG-fuzz-token", app_secret="fuzz-app-secret",
)
contact = Contact.objects.create(
    business=business, channel_account=account, external_id="5511900000001", name="Ana"
)
conversation = Conversation.objects.create(business=business, contact=contact, channel_account=account)
Message.objects.create(
    business=business, conversation=conversation, channel_account=account, direction=Direction.IN,
    author=Author.CUSTOMER, text="Hello", external_id="wamid.fuzz.1", status=MessageStatus.ANSWERED,
)
Message.objects.create(
    business=business, conversation=conversation, channel_account=account, direction=Direction.OUT,
    author=Author.AI, text="Hi! How can I help?", external_id="wamid.fuzz.2", status=MessageStatus.DELIVERED,
)
"""


def summary(text: str) -> str:
    """The closing lines of schemathesis's output: its summary and the failures' first lines."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if "SUMMARY" in line:
            return "\n".join(lines[index:])
    return "\n".join(lines[-40:])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="icmp-schema-fuzz-"))
    database_url = args.database_url or f"sqlite:///{workdir / 'db.sqlite3'}"
    port = free_port()
    env = app_env(database_url, graph_port=free_port())
    if args.database_url.startswith("postgres"):
        from bench.chaos_stack import database_recreate

        database_recreate(args.database_url)
    say(f"database {database_url}; migrating")
    manage(env, "migrate", "--noinput")
    manage(env, "seed_templates")
    created = manage(
        env, "create_business", "Fuzz Cafe", "--owner-email", "owner@fuzz.example", "--slug", "fuzz-cafe"
    )
    key = KEY_RE.search(created)
    if key is None:
        print(created, file=sys.stderr)
        raise SystemExit("create_business printed no API key")
    manage(env, "shell", "-c", SEED_DATA)

    web = Service(
        "web",
        [
            PYTHON,
            "-m",
            "gunicorn",
            "icmp.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--timeout",
            "60",
        ],
        env,
        workdir,
    ).start()
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(f"{base}/ping"), timeout=60, what="gunicorn")
        args.output.parent.mkdir(parents=True, exist_ok=True)
        junit = args.output.with_suffix(".xml")
        command = [
            str(Path(PYTHON).with_name("schemathesis")),
            "--no-color",
            "run",
            f"{base}/api/schema/",
            "--header",
            f"Authorization: Api-Key {key.group(1)}",
            "--checks",
            args.checks,
            "--exclude-path-regex",
            EXCLUDE_PATH_REGEX,
            "--max-examples",
            str(args.max_examples),
            "--seed",
            str(args.seed),
            "--workers",
            args.workers,
            "--phases",
            args.phases,
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--report",
            "junit",
            "--report-junit-path",
            str(junit),
        ]
        say(
            f"schemathesis on {base}/api/schema/ "
            f"({args.max_examples} examples per operation, seed {args.seed})"
        )
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": HOOKS},
        )
        output = done.stdout + (("\n" + done.stderr) if done.stderr.strip() else "")
        header = (
            f"# python -m bench.schema_fuzz {' '.join(argv if argv is not None else sys.argv[1:])}\n"
            f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, {time.monotonic() - started:.0f} s, "
            f"exit code {done.returncode}, checks {args.checks}\n\n"
        )
        args.output.write_text(header + output)
        print(summary(output))
        print(f"\nfull report: {args.output} (JUnit: {junit}); server log: {web.log_path}")
        return done.returncode
    finally:
        web.stop()


if __name__ == "__main__":
    sys.exit(main())
