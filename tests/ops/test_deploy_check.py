"""Production settings pass Django's deployment checks; models and migrations agree.

Both run `manage.py` in a subprocess with a clean, production-like environment:
the test settings module changes os.environ (DEBUG, cookie flags …), so none of
it may leak into the child.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings

# Only what a process needs to start; everything ICMP reads is set explicitly below.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")


def manage(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    child_env.update(
        {
            "DJANGO_SETTINGS_MODULE": "icmp.settings",
            "ICMP_SKIP_DOTENV": "1",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy-check.sqlite3'}",
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_deploy_check_passes_with_production_settings(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        tmp_path=tmp_path,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(48),
        FIELD_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
        ALLOWED_HOSTS="example.com",
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output, output
    assert "System check identified no issues" in result.stdout, output


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    result = manage("check", "--deploy", tmp_path=tmp_path, DEBUG="0", ALLOWED_HOSTS="example.com")

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_the_web_server_refuses_to_start_without_a_secret_key():
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env.update(
        DEBUG="0", ALLOWED_HOSTS="example.com", ICMP_SKIP_DOTENV="1", DJANGO_SETTINGS_MODULE="icmp.settings"
    )
    result = subprocess.run(
        [sys.executable, "-c", "import icmp.wsgi"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_refuse_to_start_without_field_encryption_keys(tmp_path):
    result = manage(
        "check",
        "--deploy",
        tmp_path=tmp_path,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="example.com",
    )

    assert result.returncode != 0
    assert "(icmp.E002) FIELD_ENCRYPTION_KEYS must be set when DEBUG is off" in result.stderr
    assert "Fernet.generate_key()" in result.stderr


def test_a_malformed_field_encryption_key_is_named_by_every_command(tmp_path):
    result = manage(
        "check",
        tmp_path=tmp_path,
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(48),
        FIELD_ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},not-a-key-but-close-enough",
        ALLOWED_HOSTS="example.com",
    )

    assert result.returncode != 0
    assert "(icmp.E003) FIELD_ENCRYPTION_KEYS entry #2 is not a Fernet key" in result.stderr
    assert "not-a-key-but-close-enough" not in result.stderr


def test_the_web_server_refuses_to_start_without_field_encryption_keys():
    env = {name: os.environ[name] for name in _PASSED_THROUGH if name in os.environ}
    env.update(
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="example.com",
        ICMP_SKIP_DOTENV="1",
        DJANGO_SETTINGS_MODULE="icmp.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import icmp.asgi"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS must be set when DEBUG is off" in result.stderr


def test_tooling_works_without_a_secret_key_or_encryption_keys(tmp_path):
    result = manage("makemigrations", "--check", "--dry-run", tmp_path=tmp_path, DEBUG="0")

    assert result.returncode == 0, result.stdout + result.stderr


def test_models_and_migrations_agree(tmp_path):
    result = manage("makemigrations", "--check", "--dry-run", tmp_path=tmp_path, DEBUG="1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout
