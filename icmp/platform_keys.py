"""The platform keys (internal, master) as bearer tokens on operator endpoints.

/metrics and the details of /health answer only to a platform key: they show
pending work, dependency versions and configuration that an outsider should not
map. Compared in constant time.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest


def platform_key_given(request: HttpRequest) -> bool:
    """True when the request carries the internal or master key (`Bearer` or `Api-Key`)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "api-key") or not token:
        return False
    keys = [k for k in (settings.ICMP_INTERNAL_API_KEY, settings.ICMP_MASTER_API_KEY) if k]
    return any(hmac.compare_digest(token.encode(), key.encode()) for key in keys)
