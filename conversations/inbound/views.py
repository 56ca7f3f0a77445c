"""Meta webhooks: the hub.challenge handshake and signed event POSTs.

A thin door: verify the signature, store the raw body (one INSERT), answer.
A task applies the event after commit (conversations/inbound/webhooks.py).
Answers (docs/meta-platform.md §1, §2, §6.1, §7.3): 403 when the signature is
bad or cannot be checked, 400 when the body is not JSON (or nests deeper than
icmp.strict_json allows), 200 once the body is stored, so one broken tenant
never makes Meta back off the whole app, and 5xx only when the body could not
be stored (the database is down), which Meta retries.
Requests reach it through WebhookDoorMiddleware, without the admin's middleware.
"""

from __future__ import annotations

import hmac
import logging
import uuid

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from channels_app.adapters import get_adapter
from channels_app.models import ChannelAccount
from conversations.inbound.cleaning import parse_json
from conversations.inbound.webhooks import webhook_event_store
from icmp.errors import error_response

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"


def _forbidden(message: str = "Forbidden.") -> JsonResponse:
    return error_response(403, "permission_denied", message)


@csrf_exempt
def meta_webhook(request: HttpRequest, *, channel: str, account_id: uuid.UUID | None = None) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        response = error_response(405, "method_not_allowed", f"Method {request.method} not allowed.")
        response["Allow"] = "GET, POST"
        return response
    account = None
    if account_id is not None:
        # Unknown ids get the same answer as a bad signature: nothing to verify against.
        account = (
            ChannelAccount.objects.filter(pk=account_id, kind=channel).select_related("business").first()
        )
        if account is None:
            return _forbidden()
    if request.method == "GET":
        return _handshake(request, account)
    return _receive(request, channel, account)


def _handshake(request: HttpRequest, account: ChannelAccount | None) -> HttpResponse:
    expected = (account.verify_token if account else "") or settings.META_VERIFY_TOKEN
    given = request.GET.get("hub.verify_token", "")
    if (
        not expected
        or request.GET.get("hub.mode") != "subscribe"
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        return _forbidden("Verification failed.")
    # The challenge goes back exactly as sent: plain text, never JSON-quoted.
    return HttpResponse(request.GET.get("hub.challenge", ""), content_type="text/plain")


def _receive(request: HttpRequest, channel: str, account: ChannelAccount | None) -> HttpResponse:
    secret = (account.app_secret if account else "") or settings.META_APP_SECRET
    if not secret:
        logger.error("webhook cannot be verified: no app secret is configured", extra={"channel": channel})
        return _forbidden("No app secret is configured; the signature cannot be verified.")
    raw = request.body
    # Over the raw bytes, before any parsing: Meta signs its escaped-unicode form.
    if not get_adapter(channel).verify_signature(raw, request.headers.get(SIGNATURE_HEADER), secret):
        logger.warning("webhook signature rejected", extra={"channel": channel})
        return _forbidden("Invalid or missing X-Hub-Signature-256.")
    try:
        body = raw.decode("utf-8")
        parse_json(body)
    except ValueError as exc:  # UnicodeDecodeError too; parse_json never lets RecursionError out
        return error_response(400, "parse_error", f"The body is not valid UTF-8 JSON: {exc}")
    event = webhook_event_store(channel=channel, body=body, account=account)
    return JsonResponse({"status": "ok", "event": str(event.pk)})
