"""Re-apply stored webhook events after a parser fix or after connecting a missing account."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from conversations.inbound import webhook_event_replay, webhook_events_for_replay


def _iso(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--since: {value!r} is not an ISO date or datetime") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"--id: {value!r} is not a UUID") from None


class Command(BaseCommand):
    help = (
        "Apply stored webhook events again through the normal ingest path (failed and unrouted ones "
        "by default). Idempotent: messages already stored are not stored or processed twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status",
            choices=["failed", "unrouted", "all"],
            help="Which events (default: failed and unrouted; all includes processed ones).",
        )
        parser.add_argument(
            "--since", type=_iso, help="Only events received at or after this ISO time (UTC)."
        )
        parser.add_argument("--id", dest="event_id", type=_uuid, help="Only this event, whatever its status.")
        parser.add_argument("--dry-run", action="store_true", help="Count the events; change nothing.")

    def handle(self, *args, **options) -> None:
        events = webhook_events_for_replay(
            status=options["status"], since=options["since"], event_id=options["event_id"]
        )
        ids = list(events.values_list("pk", flat=True))
        if options["dry_run"]:
            self.stdout.write(f"Would replay {len(ids)} webhook event(s).")
            return
        outcomes: Counter[str] = Counter()
        for event_id in ids:
            outcomes[webhook_event_replay(event_id=event_id).status] += 1
        detail = ", ".join(f"{status} {count}" for status, count in sorted(outcomes.items()))
        self.stdout.write(f"Replayed {len(ids)} webhook event(s)" + (f": {detail}." if detail else "."))
