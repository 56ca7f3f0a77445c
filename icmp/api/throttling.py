"""Per-caller rate limits in the cache (Redis when REDIS_URL is set).

Throttles are a fairness tool, not a security control on their own. Every
per-address bucket keys on icmp.client_address, so X-Forwarded-For counts only
through the TRUSTED_PROXY_COUNT proxies the deployment declares.
"""

from __future__ import annotations

from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from businesses.services import KEY_PREFIX
from icmp.api.permissions import principal_of
from icmp.client_address import client_address

# Failed key attempts, counted per (client address, key prefix) and per key prefix
# over a fixed window. Past a limit, further *failures* are answered 429 instead of
# 401; a valid key is never refused, so a shared proxy address or a leaked prefix
# cannot lock anyone out. (Keys carry 256 random bits: guessing is not the threat
# these counters answer; clients looping on a bad key are.)
FAILED_AUTH_WINDOW = 300
FAILED_AUTH_LIMIT_PER_ADDRESS = 30
FAILED_AUTH_LIMIT_PER_PREFIX = 300
# Keys that are not `icmp_<prefix>.<secret>` (wrong platform keys, garbage) share one bucket.
OTHER_KEYS = "other"
_PREFIX_MAX = 16


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

    def get_ident(self, request: Request) -> str:
        # DRF's own get_ident believes X-Forwarded-For whenever NUM_PROXIES is unset.
        return client_address(request)

    def get_cache_key(self, request: Request, view) -> str:
        principal = principal_of(request)
        ident = principal.throttle_ident if principal else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def key_bucket(raw_key: str) -> str:
    """The prefix of an `icmp_<prefix>.<secret>` key, or OTHER_KEYS."""
    if raw_key.startswith(KEY_PREFIX):
        prefix = raw_key[len(KEY_PREFIX) :].partition(".")[0]
        if 0 < len(prefix) <= _PREFIX_MAX and prefix.isascii() and prefix.isalnum():
            return prefix
    return OTHER_KEYS


def _count(key: str) -> int:
    cache.add(key, 0, FAILED_AUTH_WINDOW)  # the window starts at the first failure
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, FAILED_AUTH_WINDOW)
        return 1


def failed_auth_record(request: Request, *, raw_key: str) -> bool:
    """Count one failed key attempt; True when the caller is now over a limit."""
    bucket = key_bucket(raw_key)
    per_address = _count(f"auth-failures:{client_address(request)}:{bucket}")
    per_prefix = _count(f"auth-failures:prefix:{bucket}")
    return per_address > FAILED_AUTH_LIMIT_PER_ADDRESS or per_prefix > FAILED_AUTH_LIMIT_PER_PREFIX
