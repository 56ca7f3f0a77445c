"""Refuse to run a production process with a missing SECRET_KEY or FIELD_ENCRYPTION_KEYS.

The WSGI, ASGI and Celery entry points call `require_settings()` before they
serve anything; `check --deploy` reports the same problems as errors. Other
commands (makemigrations, migrate, shell …) are not stopped by a missing key:
they fail only when they actually touch a secret.
"""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from icmp import crypto

MESSAGE = "SECRET_KEY must be set when DEBUG is off."
KEYS_MESSAGE_PRODUCTION = (
    "FIELD_ENCRYPTION_KEYS must be set when DEBUG is off: channel secrets are encrypted at rest with it."
)
KEYS_MESSAGE_STORED = (
    "FIELD_ENCRYPTION_KEYS must be set: channel accounts hold secrets, which are encrypted at rest with it."
)


def require_secret_key() -> None:
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses an empty key when it is read
        key = ""
    if not key:
        raise ImproperlyConfigured(MESSAGE)


def missing_keys_problem() -> str | None:
    """Why running without FIELD_ENCRYPTION_KEYS is wrong here, or None when it is fine."""
    if crypto.configured_keys():
        return None
    if not settings.DEBUG:
        return KEYS_MESSAGE_PRODUCTION
    from icmp.fields import secrets_stored  # models are loaded by now

    # A development database with secrets (encrypted, or plaintext awaiting the
    # migration) cannot be read or migrated without the key.
    return KEYS_MESSAGE_STORED if secrets_stored() else None


def require_field_encryption_keys() -> None:
    problem = missing_keys_problem()
    if problem:
        raise ImproperlyConfigured(f"{problem} {crypto.GENERATE_HINT}")
    if crypto.configured_keys():
        crypto.keyring()  # a malformed key is named here, not at the first secret


def require_settings() -> None:
    """Called by the WSGI, ASGI and Celery entry points before they serve anything."""
    require_secret_key()
    require_field_encryption_keys()


@checks.register(checks.Tags.security, deploy=True)
def secret_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        require_secret_key()
    except ImproperlyConfigured:
        return [checks.Error(MESSAGE, hint="Set SECRET_KEY in the environment or .env.", id="icmp.E001")]
    return []


@checks.register(checks.Tags.security, deploy=True)
def field_encryption_keys_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    problem = missing_keys_problem()
    if problem:
        return [checks.Error(problem, hint=crypto.GENERATE_HINT, id="icmp.E002")]
    return []


@checks.register(checks.Tags.security)
def field_encryption_keys_valid_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    # Every command, not only --deploy: a malformed key would fail at the first secret.
    try:
        if crypto.configured_keys():
            crypto.keyring()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="icmp.E003")]
    return []
