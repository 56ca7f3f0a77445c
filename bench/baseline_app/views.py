"""One INSERT of the raw body, answered with a small JSON: the floor of any webhook door."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

TABLE = "bench_baseline_event"


def table_ensure(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} ("
            "id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "received_at timestamptz NOT NULL DEFAULT now(), body text NOT NULL)"
        )


@csrf_exempt
def ingest(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return HttpResponse(status=405)
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (body) VALUES (%s)", [request.body.decode("utf-8")])  # noqa: S608
    return JsonResponse({"status": "ok"})
