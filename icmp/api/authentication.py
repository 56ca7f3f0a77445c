"""API authentication: business keys, platform keys, staff sessions.

Keys come as `Authorization: Api-Key <key>` or `Authorization: Bearer <key>`.
Platform keys are compared in constant time; business keys are looked up by
prefix and their hash compared in constant time (see businesses.services).
"""

from __future__ import annotations

import hmac
import uuid

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.request import Request

from businesses.models import Business
from businesses.selectors import membership_role_get
from businesses.services import api_key_authenticate
from icmp.api.principal import Principal, PrincipalKind
from icmp.api.throttling import FAILED_AUTH_WINDOW, failed_auth_record

SCHEMES = ("api-key", "bearer")
BUSINESS_HEADER = "X-Business-Id"


def _constant_time_equals(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate_header(self, request: Request) -> str:
        return 'Api-Key realm="api"'

    def authenticate(self, request: Request) -> tuple[AnonymousUser, Principal] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw_key = header.partition(" ")
        if scheme.lower() not in SCHEMES:
            return None
        raw_key = raw_key.strip()
        if not raw_key or " " in raw_key:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")

        if _constant_time_equals(raw_key, settings.ICMP_MASTER_API_KEY):
            return AnonymousUser(), Principal(kind=PrincipalKind.MASTER)
        if _constant_time_equals(raw_key, settings.ICMP_INTERNAL_API_KEY):
            return AnonymousUser(), Principal(kind=PrincipalKind.INTERNAL)
        api_key = api_key_authenticate(raw_key=raw_key)
        if api_key is None:
            # Counted only once the key is known to be wrong: a valid key always works.
            if failed_auth_record(request, raw_key=raw_key):
                raise exceptions.Throttled(wait=FAILED_AUTH_WINDOW)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        return AnonymousUser(), Principal(
            kind=PrincipalKind.BUSINESS, business=api_key.business, api_key=api_key
        )


class StaffSessionAuthentication(SessionAuthentication):
    """A logged-in staff member acting on one business they belong to.

    The business is the one named by the X-Business-Id header, or the user's
    only business. CSRF is enforced as for any session-authenticated API.
    """

    def authenticate(self, request: Request):  # type: ignore[override]
        user = getattr(request._request, "user", None)
        if not user or not user.is_active or not user.is_staff:
            return None
        self.enforce_csrf(request)
        business, role = self._business_for(request, user)
        return user, Principal(kind=PrincipalKind.BUSINESS, business=business, user_id=user.pk, role=role)

    def _business_for(self, request: Request, user) -> tuple[Business | None, str | None]:
        wanted = request.META.get("HTTP_X_BUSINESS_ID", "").strip()
        if wanted:
            try:
                business_id = uuid.UUID(wanted)
            except ValueError:
                raise exceptions.AuthenticationFailed(f"{BUSINESS_HEADER} must be a business id.")
            business = Business.objects.filter(pk=business_id, is_active=True).first()
            if business is None:
                return None, None
            if user.is_superuser:
                return business, None
            role = membership_role_get(user=user, business=business)
            return (business, role) if role else (None, None)
        if user.is_superuser:
            return None, None
        memberships = list(user.memberships.select_related("business").filter(business__is_active=True)[:2])
        if len(memberships) == 1:
            return memberships[0].business, memberships[0].role
        return None, None
