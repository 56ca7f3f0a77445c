"""Refuse to run a production process with a missing SECRET_KEY."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

MESSAGE = "SECRET_KEY must be set when DEBUG is off."


def require_secret_key() -> None:
    """Called by the WSGI, ASGI and Celery entry points before they serve anything."""
    try:
        key = settings.SECRET_KEY
    except ImproperlyConfigured:  # Django refuses an empty key when it is read
        key = ""
    if not key:
        raise ImproperlyConfigured(MESSAGE)


@checks.register(checks.Tags.security, deploy=True)
def secret_key_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    try:
        require_secret_key()
    except ImproperlyConfigured:
        return [checks.Error(MESSAGE, hint="Set SECRET_KEY in the environment or .env.", id="icmp.E001")]
    return []
