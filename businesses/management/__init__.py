"""Shared pieces of the operator commands: finding a business, turning domain errors
into CommandError (a clear message, never a traceback)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.core.validators import validate_email

from businesses.models import Business
from icmp.errors import ApplicationError


def business_from_ref(ref: str) -> Business:
    """The business named by its slug or its id."""
    ref = (ref or "").strip()
    business = None
    if ref:
        try:
            business = Business.objects.filter(pk=uuid.UUID(ref)).first()
        except ValueError:
            business = Business.objects.filter(slug=ref).first()
    if business is None:
        raise CommandError(f"No business with slug or id {ref!r}.")
    return business


def clean_email(email: str, *, option: str = "email") -> str:
    email = (email or "").strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise CommandError(f"{option} must be an email address, got {email!r}.")
    return email


def _error_text(error: ApplicationError) -> str:
    lines = [error.message]
    for field, problems in (error.details or {}).items():
        for problem in problems if isinstance(problems, list) else [problems]:
            if isinstance(problem, dict):  # JSON Schema errors: {"path", "message"}
                problem = f"{problem.get('path')}: {problem.get('message')}"
            if problem != error.message:
                lines.append(f"  {field}: {problem}")
    return "\n".join(lines)


@contextmanager
def application_errors() -> Iterator[None]:
    """Render the domain's refusals as CommandError."""
    try:
        yield
    except ApplicationError as error:
        raise CommandError(_error_text(error))
