"""What WhatsApp, Messenger and Instagram share: the webhook signature, the Graph
API session, and how a Graph error maps to a permanent or transient SendError.

Retry policy follows docs/meta-platform.md §5.5; Meta publishes no formal
retryability flag, so the table below is Meta's "possible solutions" text
plus common practice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from typing import Any, ClassVar

import requests
from django.conf import settings

from .base import ChannelCredentials, SendError
from .payload import as_dict, as_int, as_str

logger = logging.getLogger(__name__)

SIGNATURE_PREFIX = "sha256="

# Transient Graph codes -> seconds to wait before retrying (None: the caller's backoff).
TRANSIENT_CODES: dict[int, float | None] = {
    1: 5.0,  # unknown error, possibly a server error
    2: 5.0,  # service temporarily unavailable
    4: 60.0,  # app-level call rate limit
    17: 60.0,  # user-level call rate limit
    341: 60.0,  # application limit reached
    613: 60.0,  # calls exceeded the rate limit
    80007: 60.0,  # WABA rate limit
    130429: 2.0,  # throughput (messages per second per number)
    131000: 5.0,  # something went wrong
    131016: 10.0,  # service unavailable
    # Pair rate limit: one message per 6 s to the same user; Meta suggests 4^X s backoff.
    131056: 6.0,
    131057: 60.0,  # account in maintenance (throughput upgrade, about a minute)
}

# Codes that mean the access token is dead: the channel needs re-authorization.
REAUTH_CODES = frozenset({0, 190})

# Permanent codes worth naming (every unknown 4xx is permanent too); kept so
# a reader can see the decision was deliberate.
PERMANENT_CODES = frozenset(
    {0, 3, 10, 100, 190, 368, 551, 131026, 131047, 131048, 131049, 131050, 131051, 133010}
    | set(range(132000, 132017))
    | set(range(200, 300))
)


def verify_signature(raw_body: bytes, header: str | None, app_secret: str) -> bool:
    """X-Hub-Signature-256 over the exact raw bytes Meta sent (never re-serialized JSON)."""
    if not app_secret or not isinstance(header, str) or not isinstance(raw_body, bytes | bytearray):
        return False
    header = header.strip()
    if not header.startswith(SIGNATURE_PREFIX):
        return False  # the legacy sha1= header is not accepted
    given = header[len(SIGNATURE_PREFIX) :].lower()
    if not given.isascii():
        return False
    expected = hmac.new(app_secret.encode(), bytes(raw_body), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), given.encode())


def classify(
    *,
    code: int | None,
    subcode: int | None = None,
    http_status: int | None = None,
) -> tuple[bool, float | None, bool]:
    """(permanent, retry_after, needs_reauth) for a Graph error code and HTTP status."""
    if code in REAUTH_CODES:
        return True, None, True
    if code in TRANSIENT_CODES:
        return False, TRANSIENT_CODES[code], False
    if code in PERMANENT_CODES:
        return True, None, False
    if http_status is None or http_status >= 500 or http_status == 429:
        return False, None, False
    return True, None, False


def graph_error(http_status: int, body: bytes | str | None, headers: Any = None) -> SendError:
    """A SendError from a non-2xx Graph response, whatever its body looks like."""
    try:
        data = json.loads(body) if body else None
    except (ValueError, TypeError):
        data = None
    error = as_dict(as_dict(data).get("error"))
    code = as_int(error.get("code"))
    subcode = as_int(error.get("error_subcode"))
    permanent, retry_after, needs_reauth = classify(code=code, subcode=subcode, http_status=http_status)
    header_wait = _retry_after_header(headers)
    if not permanent and header_wait is not None:
        retry_after = header_wait
    details = as_str(as_dict(error.get("error_data")).get("details"))
    message = as_str(error.get("message")) or f"HTTP {http_status}"
    if details and details not in message:
        message = f"{message} ({details})"
    return SendError(
        str(code) if code is not None else f"http_{http_status}",
        message,
        permanent=permanent,
        retry_after=retry_after,
        needs_reauth=needs_reauth,
        http_status=http_status,
        subcode=subcode,
        fbtrace_id=as_str(error.get("fbtrace_id")),
    )


def _retry_after_header(headers: Any) -> float | None:
    try:
        value = float(headers.get("Retry-After")) if headers is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and 0 <= value <= 3600 else None


_local = threading.local()


def _session() -> requests.Session:
    """One pooled session per thread: requests.Session is not documented as thread-safe."""
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


class MetaAdapter:
    """Shared Graph API plumbing; subclasses add parsing and rendering."""

    kind: ClassVar[str] = ""
    signed: ClassVar[bool] = True
    # (connect, read) seconds: Graph usually answers in well under a second; a
    # slow answer may still have sent the message, which is why 5xx and
    # timeouts are transient but duplicates are possible (no idempotency key).
    timeout: tuple[float, float] = (5.0, 20.0)
    graph_url_setting: ClassVar[str] = "META_GRAPH_URL"

    def verify_signature(self, raw_body: bytes, header: str | None, app_secret: str) -> bool:
        return verify_signature(raw_body, header, app_secret)

    def graph_url(self, path: str) -> str:
        base = getattr(settings, self.graph_url_setting, None) or settings.META_GRAPH_URL
        return f"{base.rstrip('/')}/{settings.META_GRAPH_VERSION}/{path.lstrip('/')}"

    def post(self, account: ChannelCredentials, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to the Graph API; the parsed answer, or a SendError."""
        url = self.graph_url(path)
        headers = {"Authorization": f"Bearer {account.access_token}"}
        try:
            response = _session().post(url, json=body, headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise SendError("timeout", f"Graph API timed out: {type(exc).__name__}", permanent=False)
        except requests.RequestException as exc:
            raise SendError(
                "connection_error", f"Graph API unreachable: {type(exc).__name__}", permanent=False
            )
        if response.status_code >= 300:
            error = graph_error(response.status_code, response.content, response.headers)
            logger.warning(
                "graph send failed",
                extra={
                    "channel_kind": self.kind,
                    "account": account.external_id,
                    "code": error.code,
                    "http_status": error.http_status,
                    "fbtrace_id": error.fbtrace_id,
                    "permanent": error.permanent,
                },
            )
            raise error
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            # Accepted, but we cannot tell what was sent; retrying could duplicate it.
            raise SendError(
                "invalid_response",
                "Graph API answered 2xx without a JSON object",
                permanent=True,
                http_status=response.status_code,
            )
        return data
