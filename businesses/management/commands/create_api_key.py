"""`manage.py create_api_key <business slug|id> [--name N] [--expires-in-days D | --expires-at DATE]`."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from businesses.management import application_errors, business_from_ref
from businesses.services import api_key_create

MAX_DAYS = 3650


def _parse_expires_at(value: str) -> datetime:
    value = value.strip()
    try:
        moment = parse_datetime(value)
        day = None if moment else parse_date(value)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        moment = day = None
    if moment is None and day is not None:
        moment = datetime.combine(day, time.min)
    if moment is None:
        raise CommandError(
            f"--expires-at {value!r} is not a date; use YYYY-MM-DD or an ISO 8601 date and time."
        )
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)
    if moment <= timezone.now():
        raise CommandError(f"--expires-at {value!r} is in the past; an API key must expire in the future.")
    return moment


class Command(BaseCommand):
    help = "Create an API key for a business and print it once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("business", help="The business's slug or id.")
        parser.add_argument("--name", default="Created with manage.py", help="A label for the key.")
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument("--expires-in-days", type=int, help="Days until the key stops working.")
        expiry.add_argument("--expires-at", help="When the key stops working (YYYY-MM-DD, UTC).")

    def handle(self, *args: Any, **options: Any) -> None:
        business = business_from_ref(options["business"])
        name = (options["name"] or "").strip()
        if not name:
            raise CommandError("--name must not be empty.")
        expires_at = None
        days = options["expires_in_days"]
        if days is not None:
            if not 1 <= days <= MAX_DAYS:
                raise CommandError(f"--expires-in-days must be between 1 and {MAX_DAYS}, got {days}.")
            expires_at = timezone.now() + timedelta(days=days)
        elif options["expires_at"] is not None:
            expires_at = _parse_expires_at(options["expires_at"])

        with application_errors():
            api_key, raw_key = api_key_create(business=business, name=name, expires_at=expires_at)

        self.stdout.write(self.style.SUCCESS(f'Created API key "{api_key.name}" for {business.name}.'))
        self.stdout.write(f"Key id: {api_key.pk}")
        expiry = api_key.expires_at.isoformat() if api_key.expires_at else "never"
        self.stdout.write(f"Expires: {expiry}")
        self.stdout.write("Store this API key now; it is shown only once:")
        self.stdout.write(f"API key: {raw_key}")
