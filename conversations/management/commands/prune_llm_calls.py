"""`manage.py prune_llm_calls --older-than DAYS [--business slug|id] [--dry-run]`.

The ledger keeps whole prompts and responses (customer text included), so it
must not grow forever: run this from cron with the retention you promise.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from businesses.management import business_from_ref
from conversations.models import LLMCall

# Each DELETE is its own short transaction: a big backlog never holds locks for long
# nor builds one huge rollback segment.
BATCH_SIZE = 5000


def _days(value: str) -> int:
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise CommandError(f"--older-than must be a whole number of days, got {value!r}.")
    if days < 1:
        raise CommandError(f"--older-than must be at least 1 day, got {days}.")
    return days


class Command(BaseCommand):
    help = "Delete LLM call ledger rows older than DAYS days, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", required=True, metavar="DAYS", help="Delete calls made more than DAYS days ago."
        )
        parser.add_argument("--business", help="Only this business (slug or id).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help=f"Rows per DELETE ({BATCH_SIZE})."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = _days(options["older_than"])
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError(f"--batch-size must be at least 1, got {batch_size}.")
        cutoff = timezone.now() - timedelta(days=days)
        calls = LLMCall.objects.filter(created_at__lt=cutoff)
        scope = "all businesses"
        if options["business"] is not None:
            business = business_from_ref(options["business"])
            calls = calls.filter(business=business)
            scope = business.slug

        if options["dry_run"]:
            count = calls.count()
            self.stdout.write(
                f"Would delete {count} LLM calls older than {days} days ({scope}); nothing was deleted."
            )
            return

        deleted = 0
        while True:
            # Select the ids first: DELETE … LIMIT is not portable, and a slice in a
            # subquery is not supported on every backend (MySQL).
            ids = list(calls.order_by().values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            # Nothing references a ledger row, so this is one plain DELETE per batch.
            deleted += LLMCall.objects.filter(pk__in=ids).delete()[0]
        self.stdout.write(
            self.style.SUCCESS(f"Deleted {deleted} LLM calls older than {days} days ({scope}).")
        )
