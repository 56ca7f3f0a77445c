"""Request ids and log hygiene: every log line is JSON, carries the request id,
and never shows a secret."""

from __future__ import annotations

import contextvars
import logging
import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Take a sane incoming X-Request-ID (from a proxy) or make one; echo it back."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        rid = incoming if _VALID_INCOMING_ID.match(incoming) else new_request_id()
        request.request_id = rid  # type: ignore[attr-defined]
        token = request_id_var.set(rid)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = rid
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            rid = request_id_var.get()
            if rid == "-":
                # Django logs 4xx/5xx responses ("Unauthorized: /api/...") after the
                # middleware chain has returned; the record carries the request instead.
                rid = getattr(getattr(record, "request", None), "request_id", None) or rid
            record.request_id = rid
        return True


# Things that look like credentials, wherever they appear in a log line.
_SECRET_PATTERNS = [
    # Authorization header values and "key=value"-style secrets.
    (re.compile(r"(?i)\b(api-key|bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [REDACTED]"),
    (
        re.compile(
            r"(?i)([\"']?(?:access_token|app_secret|verify_token|api_key|secret|password|"
            r"token|authorization|hub\.verify_token)[\"']?\s*[:=]\s*[\"']?)[^\"'&\s,}]+"
        ),
        r"\1[REDACTED]",
    ),
    # Our own business keys and OpenAI-style keys.
    (re.compile(r"\bicmp_[A-Za-z0-9]{6,}\.[A-Za-z0-9_-]{10,}"), "[REDACTED]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), "[REDACTED]"),
]


def redact(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# Attributes every LogRecord has; anything else came in through `extra=`.
_RECORD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id"}


class RedactSecretsFilter(logging.Filter):
    """Scrub credentials from the message, its args, `extra` values and tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not kill logging
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        self._redact_extra(record)
        if record.exc_info and record.exc_info[1] is not None:
            text = logging.Formatter().formatException(record.exc_info)
            cleaned = redact(text)
            record.exc_text = cleaned
            if cleaned != text:
                # The JSON formatter formats exc_info itself and would undo the scrub.
                record.exc_info = None
        return True

    @staticmethod
    def _redact_extra(record: logging.LogRecord) -> None:
        for name, value in list(record.__dict__.items()):
            if name in _RECORD_ATTRS:
                continue
            if isinstance(value, str):
                setattr(record, name, redact(value))
            elif isinstance(value, HttpRequest):
                # Django's request logging passes the request; the JSON formatter would
                # print its repr, query string (hub.verify_token=…, access_token=…) included.
                setattr(record, name, redact(f"{value.method} {value.get_full_path()}"))
