"""`/metrics` for Prometheus, read from the database at scrape time.

Web and worker processes are many and short-lived, so per-process counters
would disagree; the database is the source of truth and every figure here is
one cheap, indexed query (pending work and unprocessed webhooks use the partial
indexes that serve the sweeper and replay; LLM activity the `created_at` index). Scraping needs the internal
or master key as a bearer token (`authorization` in Prometheus's scrape config).
"""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CollectorRegistry, GaugeMetricFamily

from icmp.platform_keys import platform_key_given

# Recent activity is reported over this window, so the queries stay bounded.
WINDOW = timedelta(hours=1)


class DatabaseCollector:
    def collect(self):
        from channels_app.models import WebhookEvent, WebhookEventStatus
        from conversations.models import LLMCall, Message, MessageStatus

        pending = GaugeMetricFamily(
            "icmp_messages_pending",
            "Messages waiting for a worker, by direction and status.",
            labels=["direction", "status"],
        )
        rows = (
            Message.objects.filter(
                status__in=[
                    MessageStatus.RECEIVED,
                    MessageStatus.PROCESSING,
                    MessageStatus.QUEUED,
                    MessageStatus.SENDING,
                ]
            )
            .values("direction", "status")
            .annotate(n=Count("id"))
        )
        for row in rows:
            pending.add_metric([row["direction"], row["status"]], row["n"])
        yield pending

        webhooks = GaugeMetricFamily(
            "icmp_webhook_events_unprocessed",
            "Stored webhook events not processed (replayable).",
            labels=["status"],
        )
        for row in (
            WebhookEvent.objects.exclude(status=WebhookEventStatus.PROCESSED)
            .values("status")
            .annotate(n=Count("id"))
        ):
            webhooks.add_metric([row["status"]], row["n"])
        yield webhooks

        since = timezone.now() - WINDOW
        calls = GaugeMetricFamily(
            "icmp_llm_calls_last_hour",
            "LLM requests in the last hour, by purpose and outcome.",
            labels=["purpose", "outcome"],
        )
        tokens = GaugeMetricFamily(
            "icmp_llm_tokens_last_hour", "LLM tokens in the last hour, by kind.", labels=["kind"]
        )
        totals = {"prompt": 0, "completion": 0}
        for row in (
            LLMCall.objects.filter(created_at__gte=since, dry_run=False)
            .values("purpose", "outcome")
            .annotate(n=Count("id"), prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
        ):
            calls.add_metric([row["purpose"], row["outcome"]], row["n"])
            totals["prompt"] += row["prompt"] or 0
            totals["completion"] += row["completion"] or 0
        for kind, value in totals.items():
            tokens.add_metric([kind], value)
        yield calls
        yield tokens


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not platform_key_given(request):
        response = HttpResponse("Unauthorized: send the internal API key as a bearer token.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
