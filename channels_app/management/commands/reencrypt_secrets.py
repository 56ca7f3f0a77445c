"""Move every encrypted secret onto the newest key in FIELD_ENCRYPTION_KEYS (key rotation)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from icmp.fields import reencrypt_all


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise CommandError(f"--batch-size: {value!r} is not a positive integer")
    return number


class Command(BaseCommand):
    help = (
        "Re-encrypt every channel secret under the newest (first) key in FIELD_ENCRYPTION_KEYS, so "
        "older keys can be removed. Idempotent: values already under the newest key are left alone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=_positive, default=500, help="Rows per transaction (default 500)."
        )

    def handle(self, *args, **options) -> None:
        try:
            result = reencrypt_all(batch_size=options["batch_size"])
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Re-encrypted {result.rotated} secret(s) under the newest key; "
            f"{result.current} already were; {len(result.failed)} could not be decrypted."
        )
        if result.failed:
            raise CommandError(
                "No configured key opens these values (add the key that encrypted them, then run "
                "again): " + ", ".join(result.failed)
            )
