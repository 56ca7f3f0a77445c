"""Liveness (/ping) and readiness (/health) for load balancers and operators."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@require_GET
def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse("pong", content_type="text/plain")


def _timed(check) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        result = check()
    except Exception as exc:  # any failure of a dependency is a "down", not a 500
        logger.warning("health check failed: %s", exc.__class__.__name__)
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


def _migrations() -> dict[str, Any]:
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
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
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": _timed(_database),
        "cache": _timed(_cache),
        "broker": _timed(_broker),
        "migrations": _timed(_migrations),
        "llm": _timed(_llm),
    }
    healthy = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )
