"""The client's network address, as far as this deployment can vouch for it.

Every per-address limit (API throttles, failed-key counters) asks here, so one
setting decides whom to believe. Each trusted reverse proxy appends the address
it received the request from to X-Forwarded-For, so behind TRUSTED_PROXY_COUNT
proxies the Nth entry from the right is the address the outermost proxy saw;
everything left of it was written by the client and proves nothing. With no
proxy (0, the default) the header is ignored and the TCP peer is the client.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

UNKNOWN = "unknown"


def client_address(request: HttpRequest | Request) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or UNKNOWN
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    if len(hops) < proxies:
        # Fewer hops than proxies: the request did not come through all of them,
        # so nothing in the header was written by a proxy we trust.
        return remote
    try:
        return str(ipaddress.ip_address(hops[-proxies]))
    except ValueError:
        return remote
