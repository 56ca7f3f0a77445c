"""Domain errors, and the one JSON error shape every door answers with.

`{"error": {"code", "message", "details"}}`: the API's exception handler, the
JSON 4xx/5xx pages, the body-size limit and the webhook door all build it here.
"""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details if details is not None else {}}}


def error_response(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


class ApplicationError(Exception):
    """A request the domain refuses, with a stable code and an optional field."""

    status_code = 400

    def __init__(
        self,
        message: str,
        *,
        code: str = "invalid",
        field: str | None = None,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.field = field
        self.details = details if details is not None else ({field: [message]} if field else {})
        if status_code is not None:
            self.status_code = status_code
