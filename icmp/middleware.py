"""Request body limits, answered before any view reads the body.

DRF reads the request stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE
never fires for JSON; this middleware enforces one limit for the API and a
larger one for Meta webhooks (payloads of up to 3 MB).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from icmp.errors import error_response


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = (
            settings.WEBHOOK_MAX_BODY_BYTES
            if request.path.startswith("/webhooks/")
            else settings.API_MAX_BODY_BYTES
        )
        raw_length = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(raw_length)
        except ValueError:
            return error_response(400, "bad_request", "Invalid Content-Length.")
        if length > limit:
            return error_response(
                413,
                "request_too_large",
                f"Request body exceeds the limit of {limit} bytes.",
                {"limit_bytes": limit},
            )
        return self.get_response(request)
