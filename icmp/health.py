"""Liveness (/ping) and readiness (/health) for load balancers and operators.

A load balancer needs only the status code; the per-check details (database
vendor, cache and broker backends, pending migrations, the LLM model) map the
deployment, so they are shown only to a platform key sent as a bearer token,
as for /metrics.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from icmp.platform_keys import platform_key_given

logger = logging.getLogger(__name__)


@require_safe
def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong", content_type="text/plain")


def _timed(name: str, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # any failure of a dependency is a "down", not a 500
        # The class name only: driver messages can carry hosts and credentials.
        logger.warning("health check %s failed: %s", name, exc.__class__.__name__)
        result = {"ok": False, "error": exc.__class__.__name__}
    result["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database() -> dict[str, Any]:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "vendor": connections[DEFAULT_DB_ALIAS].vendor}


def _cache() -> dict[str, Any]:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", 10)
    ok = cache.get(key) == "1"
    cache.delete(key)
    backend = "redis" if settings.REDIS_URL else "local-memory"
    return {"ok": ok, "backend": backend}


def _broker() -> dict[str, Any]:
    if not settings.REDIS_URL:
        return {"ok": True, "backend": "in-process"}
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        return {"ok": bool(client.ping()), "backend": "redis"}
    finally:
        client.close()


# Once this process's migrations are all applied they stay applied (only a new
# deploy brings new ones), so the migration graph is not reloaded on every probe.
_migrations_applied = False


def _migrations() -> dict[str, Any]:
    global _migrations_applied
    if _migrations_applied:
        return {"ok": True, "pending": 0}
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    _migrations_applied = not plan
    return {"ok": not plan, "pending": len(plan)}


def _llm() -> dict[str, Any]:
    configured = bool(settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL)
    return {
        "ok": True,
        "configured": configured,
        "model": settings.LLM_MODEL if configured else None,
        "note": None
        if configured
        else "No LLM configured: AI replies are off and conversations go to staff.",
    }


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _timed("database", _database),
        "cache": _timed("cache", _cache),
        "broker": _timed("broker", _broker),
        "migrations": _timed("migrations", _migrations),
        "llm": _timed("llm", _llm),
    }
    healthy = all(c["ok"] for c in checks.values())
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable"}
    if platform_key_given(request):
        body["checks"] = checks
    return JsonResponse(body, status=200 if healthy else 503)
