"""Re-enqueue work a lost task left behind (what Celery beat runs every minute)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from conversations.sweeper import messages_sweep


class Command(BaseCommand):
    help = (
        "Re-enqueue customer messages and sends stuck past their timeout; mark interrupted sends "
        "failed. Run it from cron in embedded mode (no Redis); with a worker, Celery beat runs it."
    )

    def handle(self, *args, **options) -> None:
        counts = messages_sweep()
        for name, count in counts.items():
            self.stdout.write(f"{name}: {count}")
