"""Tenancy is a security boundary: walk every API route with the wrong tenant.

The routes come from the URL conf, not from a hand-written list, so a new route
is walked automatically; a meta-test fails when a route is neither tied to a
tenant object nor declared as one without an object id.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from django.core import serializers as django_serializers
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from businesses.models import Agent, AIControlSettings, APIKey, Business, Membership
from channels_app.models import ChannelAccount
from conversations.models import Contact, Conversation, LLMCall, Message
from stages.models import Stage
from templates_app.models import PromptTemplate

API_PREFIX = "api/v1/"


# How to find a tenant's object for a route's first path segment.
OBJECT_FOR_SEGMENT = {
    "agents": lambda t: Agent.objects.get(business=t.business, is_default=True).pk,
    "api-keys": lambda t: APIKey.objects.filter(business=t.business).first().pk,
    "stages": lambda t: t.stage.pk,
    "templates": lambda t: t.template.pk,
    "channel-accounts": lambda t: t.channel.pk,
    "contacts": lambda t: t.contact.pk,
    "conversations": lambda t: t.conversation.pk,
    "llm-calls": lambda t: t.llm_call.pk,
    "businesses": lambda t: t.business.pk,
}


def _object_id(segment: str, tenant) -> str:
    return str(OBJECT_FOR_SEGMENT[segment](tenant))


# Segments whose routes are reserved to platform keys: a business key gets 403.
PLATFORM_SEGMENTS = {"businesses"}
# Routes without an object id in the path; they act on the caller's own business.
ROUTES_WITHOUT_OBJECT = {
    "auth/check/",
    "business/",
    "business/ai-settings/",
    "usage/",
    "channels/api/messages/",
}
# Filters list routes accept that could name another tenant's objects.
CROSS_TENANT_FILTERS = ("conversation", "stage", "contact", "channel_account", "template", "message")


def _walk(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def _normalise(route: str) -> str:
    route = route.lstrip("^").replace("$", "").replace("\\", "")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", route)
    return re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", route)


def _methods(pattern: URLPattern) -> list[str]:
    callback = pattern.callback
    actions = getattr(callback, "actions", None)
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if actions:
        allowed = getattr(cls, "http_method_names", list(actions))
        return sorted(m for m in actions if m not in ("head", "options") and m in allowed)
    if cls is None:
        return ["get"]
    return sorted(
        m for m in cls.http_method_names if m not in ("head", "options", "trace") and hasattr(cls, m)
    )


def api_routes() -> list[dict[str, Any]]:
    routes = []
    for raw, pattern in _walk(get_resolver().url_patterns):
        route = _normalise(raw)
        if not route.startswith(API_PREFIX) or "<format>" in route or ".<" in route:
            continue
        path = route[len(API_PREFIX) :]
        params = re.findall(r"<(\w+)>", path)
        routes.append(
            {
                "path": path,
                "name": pattern.name,
                "params": params,
                "segment": path.split("/", 1)[0],
                "methods": _methods(pattern),
            }
        )
    return routes


def _url(route: dict[str, Any], object_id: str | None) -> str:
    kwargs = {param: object_id for param in route["params"]}
    return reverse(route["name"], kwargs=kwargs) if kwargs else reverse(route["name"])


def _snapshot(business: Business) -> str:
    """Every row Alice owns, serialised, to prove a request changed nothing."""
    querysets = [
        Business.objects.filter(pk=business.pk),
        Membership.objects.filter(business=business),
        Agent.objects.filter(business=business),
        APIKey.objects.filter(business=business),
        AIControlSettings.objects.filter(business=business),
        Stage.objects.filter(business=business),
        PromptTemplate.objects.filter(business=business),
        ChannelAccount.objects.filter(business=business),
        Contact.objects.filter(business=business),
        Conversation.objects.filter(business=business),
        Message.objects.filter(business=business),
        LLMCall.objects.filter(business=business),
    ]
    return "\n".join(django_serializers.serialize("json", qs.order_by("pk"), fields=None) for qs in querysets)


def _alice_ids(alice) -> set[str]:
    ids = {str(alice.business.pk)}
    for model in (
        Agent,
        APIKey,
        Stage,
        PromptTemplate,
        ChannelAccount,
        Contact,
        Conversation,
        Message,
        LLMCall,
    ):
        ids.update(
            str(pk) for pk in model.objects.filter(business=alice.business).values_list("pk", flat=True)
        )
    return ids


def _call(client, method: str, url: str, body: dict | None = None):
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, data=json.dumps(body or {}), content_type="application/json")


def test_every_api_route_is_covered_by_the_tenancy_walk(db):
    routes = api_routes()
    assert routes, "no API routes found"
    uncovered = [
        route["path"]
        for route in routes
        if route["segment"] not in OBJECT_FOR_SEGMENT and route["path"] not in ROUTES_WITHOUT_OBJECT
    ]
    assert not uncovered, f"routes the cross-tenant walk does not know how to aim at: {uncovered}"


def test_bobs_key_on_alices_objects_answers_404_and_changes_nothing(alice, bob):
    before = _snapshot(alice.business)
    client = bob.client()
    walked = 0
    for route in api_routes():
        if not route["params"]:
            continue
        url = _url(route, _object_id(route["segment"], alice))
        for method in route["methods"]:
            response = _call(client, method, url, {"name": "hijacked", "reason": "hijacked"})
            expected = 403 if route["segment"] in PLATFORM_SEGMENTS else 404
            assert response.status_code == expected, (method.upper(), url, response.status_code)
            assert response.json()["error"]["code"] in ("not_found", "permission_denied")
            walked += 1
    assert walked >= 20
    assert _snapshot(alice.business) == before


def test_list_routes_never_show_another_tenants_rows(alice, bob):
    alice_ids = _alice_ids(alice)
    client = bob.client()
    aimed = {
        "conversation": alice.conversation.pk,
        "stage": alice.stage.pk,
        "contact": alice.contact.pk,
        "channel_account": alice.channel.pk,
        "template": alice.template.pk,
        "message": alice.messages[0].pk,
    }
    for route in api_routes():
        if route["params"] or "get" not in route["methods"] or route["segment"] in PLATFORM_SEGMENTS:
            continue
        url = _url(route, None)
        for query in [{}, *({name: str(aimed[name])} for name in CROSS_TENANT_FILTERS)]:
            response = client.get(url, query)
            assert response.status_code in (200, 400), (url, query, response.status_code)
            body = response.content.decode()
            leaked = [pk for pk in alice_ids if pk in body]
            assert not leaked, (url, query, leaked)


def test_a_body_can_never_set_or_change_business(alice, bob):
    before = _snapshot(alice.business)
    client = bob.client()
    for route in api_routes():
        if route["segment"] in PLATFORM_SEGMENTS or route["path"] in ROUTES_WITHOUT_OBJECT - {"business/"}:
            continue
        if route["params"]:
            if not route["path"].endswith("<pk>/"):
                continue
            bob_id = _object_id(route["segment"], bob)
            url = _url(route, bob_id)
            methods = [m for m in route["methods"] if m in ("patch", "put")]
        else:
            url = _url(route, None)
            methods = [m for m in route["methods"] if m in ("post", "patch", "put")]
        for method in methods:
            response = _call(client, method, url, {"business": str(alice.business.pk), "name": "x"})
            assert response.status_code == 400, (method.upper(), url, response.status_code)
            assert "business" in response.json()["error"]["details"], (method.upper(), url)
    assert _snapshot(alice.business) == before
