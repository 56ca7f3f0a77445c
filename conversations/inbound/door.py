"""The webhook door's own short middleware chain.

Meta's POSTs need only the request id, the body size limit and the security
middleware (HTTPS). This middleware sits right after them in MIDDLEWARE and
answers /webhooks/ itself, so a webhook never pays for sessions, CORS, CSRF,
authentication, the messages framework, history or the login limiter, which
serve the admin and the API. Any other path, and a /webhooks/ path that
matches no webhook route (the full chain then redirects a missing slash or
answers the JSON 404), goes on through the rest of the chain.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, get_resolver

PREFIX = "/webhooks/"
URLCONF = "conversations.inbound.urls"


class WebhookDoorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.resolver = get_resolver(URLCONF)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if not path.startswith(PREFIX):
            return self.get_response(request)
        try:
            match = self.resolver.resolve(path[len(PREFIX) - 1 :])
        except Resolver404:
            return self.get_response(request)
        request.resolver_match = match
        return match.func(request, *match.args, **match.kwargs)
