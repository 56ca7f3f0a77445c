"""The Celery app. Tasks subclass DjangoTask, so `task.delay_on_commit()` exists.

Without REDIS_URL, tasks run in-process (eager) once the transaction commits;
with it, a worker (`celery -A icmp worker`) and beat (`celery -A icmp beat`)
run them.
"""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "icmp.settings")

app = Celery("icmp", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _require_settings(**kwargs) -> None:
    from icmp.startup import require_settings

    require_settings()
