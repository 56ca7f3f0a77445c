"""Brute-force limit on the admin login (django-axes, attempts in the database).

Failed logins are counted per (username, client address): after
AXES_FAILURE_LIMIT of them that pair is locked for the cool-off, so a colleague
behind the same office NAT keeps logging in. A second, higher limit per
username (LOGIN_FAILURE_LIMIT_PER_USERNAME, from any address) stops a guessing
run spread over many addresses; it locks that username everywhere until the
cool-off, which is the price of stopping it. A locked-out login is refused even
with the right password and answers a 429 page, never a 500.

The client address is the one every per-address limit uses (icmp.client_address,
under TRUSTED_PROXY_COUNT), so a client cannot pick its own address by sending
X-Forwarded-For.
"""

from __future__ import annotations

from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib import admin
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from icmp.client_address import UNKNOWN, client_address


def client_ip(request: HttpRequest) -> str:
    """The client's address under the project's trusted-proxy rule (icmp.client_address);
    empty when there is none to record: the attempts table holds addresses only."""
    address = client_address(request)
    return "" if address == UNKNOWN else address


class LoginLimitBackend(AxesStandaloneBackend):
    """Refuses a locked-out login before the password is checked (ModelBackend follows).

    Every HTTP door passes the request (the admin login form does); a call
    without one comes from code, such as the test client's `login()` or a
    script, has no client address to count, and is left to ModelBackend.
    """

    def authenticate(self, request: HttpRequest | None, username=None, password=None, **kwargs: Any):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


class LoginLimitHandler(AxesDatabaseHandler):
    """Axes' database handler with a second, higher limit per username."""

    def get_failures(self, request: HttpRequest, credentials: dict | None = None) -> int:
        failures = super().get_failures(request, credentials)
        username = get_client_username(request, credentials)
        if not username:
            return failures
        per_username = (
            AccessAttempt.objects.filter(
                username=username, attempt_time__gte=get_cool_off_threshold(request)
            ).aggregate(n=Sum("failures_since_start"))["n"]
            or 0
        )
        if per_username >= settings.LOGIN_FAILURE_LIMIT_PER_USERNAME:
            return max(failures, get_failure_limit(request, credentials))
        return failures


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The page a locked-out login gets: what happened and when to try again."""
    cool_off = get_cool_off(request)
    seconds = int(cool_off.total_seconds()) if cool_off else 0
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "minutes": max(1, round(seconds / 60)),
    }
    response = render(request, "admin/login_locked.html", context, status=429)
    if seconds:
        response["Retry-After"] = str(seconds)
    return response
