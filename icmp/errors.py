"""Domain errors. The API's exception handler renders them as JSON."""

from __future__ import annotations

from typing import Any


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
