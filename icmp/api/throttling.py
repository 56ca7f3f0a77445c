"""Per-caller rate limits in the cache (Redis when REDIS_URL is set).

Throttles are a fairness tool, not a security control on their own.
"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from icmp.api.permissions import principal_of


class PrincipalRateThrottle(SimpleRateThrottle):
    """One bucket per API key (or staff user); anonymous callers share one per address."""

    scope = "principal"

    def allow_request(self, request: Request, view) -> bool:
        self.scope = "principal" if principal_of(request) else "anon"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self) -> str | None:
        # Read at call time (not class creation) so settings overrides apply.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Request, view) -> str:
        principal = principal_of(request)
        ident = principal.throttle_ident if principal else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
