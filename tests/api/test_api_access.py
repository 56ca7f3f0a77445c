"""The API obeys `icmp.access.ACCESS`, the table the back office obeys too.

Every role calls every business route's actions; a 403 must come exactly
where the table refuses. The serializers accept exactly the table's fields,
and every business route names its model in the table.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from businesses.models import AIControlSettings, APIKey, Business, Role
from businesses.serializers import (
    AgentSerializer,
    AIControlSettingsSerializer,
    APIKeyCreateSerializer,
    BusinessSerializer,
)
from businesses.services import agent_create, membership_add
from channels_app.serializers import ChannelAccountSerializer
from conversations.models import Contact, Conversation, LLMCall
from conversations.serializers import ContactSerializer
from icmp.access import ACCESS, ACTIONS, access_for, role_may
from icmp.api.permissions import IsBusinessPrincipal
from stages.models import Stage
from stages.serializers import StageSerializer
from templates_app.models import PromptTemplate
from templates_app.serializers import TemplateSerializer

pytestmark = pytest.mark.django_db

ROLES = (Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER)
API = "/api/v1"
# Business routes that act on no model of the table (a customer message sent
# through the generic API channel: what an editor may do, like before the table).
OUTSIDE_THE_TABLE = {"ChannelApiMessageApi"}


def calls(world: dict[str, Any]) -> list[tuple[str, str, str, str, dict | None]]:
    """(model label, table action, method, url, body) for every business route's actions."""
    agent, key, stage = world["agent"], world["key"], world["stage"]
    template, channel = world["template"], world["channel"]
    conversation, contact = world["conversation"], world["contact"]
    return [
        ("businesses.business", "view", "get", f"{API}/business/", None),
        ("businesses.business", "change", "patch", f"{API}/business/", {"name": "Renamed"}),
        ("businesses.aicontrolsettings", "view", "get", f"{API}/business/ai-settings/", None),
        (
            "businesses.aicontrolsettings",
            "change",
            "patch",
            f"{API}/business/ai-settings/",
            {"auto_reply_enabled": False},
        ),
        ("businesses.agent", "view", "get", f"{API}/agents/{agent.pk}/", None),
        ("businesses.agent", "add", "post", f"{API}/agents/", {"name": "New"}),
        ("businesses.agent", "change", "patch", f"{API}/agents/{agent.pk}/", {"name": "Moved"}),
        ("businesses.agent", "delete", "delete", f"{API}/agents/{agent.pk}/", None),
        ("businesses.apikey", "view", "get", f"{API}/api-keys/", None),
        ("businesses.apikey", "add", "post", f"{API}/api-keys/", {"name": "Zapier"}),
        ("businesses.apikey", "change", "post", f"{API}/api-keys/{key.pk}/revoke/", None),
        ("businesses.apikey", "delete", "delete", f"{API}/api-keys/{key.pk}/", None),
        ("stages.stage", "view", "get", f"{API}/stages/{stage.pk}/", None),
        ("stages.stage", "add", "post", f"{API}/stages/", {"key": "new", "name": "New"}),
        ("stages.stage", "change", "patch", f"{API}/stages/{stage.pk}/", {"name": "Moved"}),
        ("stages.stage", "delete", "delete", f"{API}/stages/{stage.pk}/", None),
        ("templates_app.prompttemplate", "view", "get", f"{API}/templates/{template.pk}/", None),
        (
            "templates_app.prompttemplate",
            "view",
            "post",
            f"{API}/templates/{template.pk}/preview/",
            {"sample": True},
        ),
        (
            "templates_app.prompttemplate",
            "add",
            "post",
            f"{API}/templates/",
            {"kind": "response_generation", "name": "New", "content": "Hi from {{ business.name }}."},
        ),
        (
            "templates_app.prompttemplate",
            "change",
            "patch",
            f"{API}/templates/{template.pk}/",
            {"description": "Warm"},
        ),
        ("templates_app.prompttemplate", "delete", "delete", f"{API}/templates/{template.pk}/", None),
        ("channels_app.channelaccount", "view", "get", f"{API}/channel-accounts/{channel.pk}/", None),
        (
            "channels_app.channelaccount",
            "add",
            "post",
            f"{API}/channel-accounts/",
            {"kind": "api", "name": "Web"},
        ),
        (
            "channels_app.channelaccount",
            "change",
            "patch",
            f"{API}/channel-accounts/{channel.pk}/",
            {"external_id": "1065400001"},
        ),
        ("channels_app.channelaccount", "delete", "delete", f"{API}/channel-accounts/{channel.pk}/", None),
        ("conversations.contact", "view", "get", f"{API}/contacts/{contact.pk}/", None),
        ("conversations.contact", "change", "patch", f"{API}/contacts/{contact.pk}/", {"name": "Maria"}),
        ("conversations.conversation", "view", "get", f"{API}/conversations/{conversation.pk}/", None),
        (
            "conversations.conversation",
            "view",
            "get",
            f"{API}/conversations/{conversation.pk}/messages/",
            None,
        ),
        (
            "conversations.conversation",
            "change",
            "post",
            f"{API}/conversations/{conversation.pk}/pause-ai/",
            {},
        ),
        (
            "conversations.conversation",
            "change",
            "post",
            f"{API}/conversations/{conversation.pk}/resume-ai/",
            None,
        ),
        (
            "conversations.conversation",
            "change",
            "post",
            f"{API}/conversations/{conversation.pk}/messages/",
            {"text": "A person here."},
        ),
        ("conversations.llmcall", "view", "get", f"{API}/llm-calls/", None),
        ("conversations.llmcall", "view", "get", f"{API}/usage/", None),
    ]


@pytest.fixture
def world(alice) -> dict[str, Any]:
    users = {Role.OWNER: alice.owner}
    for role in (Role.ADMIN, Role.EDITOR, Role.VIEWER):
        users[role] = membership_add(business=alice.business, email=f"{role}@example.com", role=role)[0].user
    return {
        "users": users,
        # Not the default agent, which is never deletable (a domain rule, not a role rule).
        "agent": agent_create(business=alice.business, name="Walker"),
        "key": APIKey.objects.get(business=alice.business),
        "stage": Stage.objects.create(business=alice.business, key="walk", name="Walk", order=5),
        "template": alice.template,
        # Without contacts, so deleting it is not refused as "in use".
        "channel": alice.channel.__class__.objects.create(
            business=alice.business, kind="api", external_id="web-walk", name="Walk"
        ),
        "contact": alice.contact,
        "conversation": alice.conversation,
    }


@pytest.mark.parametrize("role", ROLES)
def test_every_role_is_refused_exactly_where_the_table_refuses(world, role):
    client = APIClient()
    client.force_login(world["users"][role])
    for label, action, method, url, body in calls(world):
        with transaction.atomic():
            response = getattr(client, method)(url, body, format="json")
            transaction.set_rollback(True)
        allowed = role_may(role, label, action)
        assert (response.status_code != 403) is allowed, (role, label, action, url, response.json())
        if not allowed:
            assert response.json()["error"]["code"] == "permission_denied"


# What the table allows but the API does not offer (a door may offer less, never more).
NOT_OFFERED = {
    ("businesses.aicontrolsettings", "add"),  # every business has them; PATCH upserts
}
UNROUTED = {
    "businesses.membership",
    "channels_app.webhookevent",
    "channels_app.webhookeventpart",
    "conversations.message",
}


def test_every_action_the_table_allows_is_walked(world):
    walked = {(label, action) for label, action, *_ in calls(world)}
    for label, rules in ACCESS.items():
        if label in UNROUTED:
            continue
        for action in ACTIONS:
            if rules.roles(action) and (label, action) not in NOT_OFFERED:
                assert (label, action) in walked, (label, action)


def _writable(serializer_class) -> set[str]:
    return {name for name, field in serializer_class().fields.items() if not field.read_only}


@pytest.mark.parametrize(
    ("model", "create", "update"),
    [
        (Business, None, BusinessSerializer),
        (AIControlSettings, AIControlSettingsSerializer, AIControlSettingsSerializer),
        ("businesses.agent", AgentSerializer, AgentSerializer),
        (APIKey, APIKeyCreateSerializer, None),
        (Stage, StageSerializer, StageSerializer),
        (PromptTemplate, TemplateSerializer, TemplateSerializer),
        ("channels_app.channelaccount", ChannelAccountSerializer, ChannelAccountSerializer),
        (Contact, None, ContactSerializer),
        (Conversation, None, None),
        (LLMCall, None, None),
    ],
    ids=str,
)
def test_the_api_accepts_exactly_the_tables_fields(model, create, update):
    label = model if isinstance(model, str) else model._meta.label_lower
    rules = access_for(label)
    if create is not None:
        assert _writable(create) == set(rules.add_fields)
    else:
        assert rules.add_fields == ()
    if update is not None:
        # A template's or channel account's kind is accepted unchanged only (the services refuse a change).
        assert _writable(update) - {"kind"} == set(rules.change_fields)


def _views(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            callback = pattern.callback
            cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
            if cls is not None and (prefix + str(pattern.pattern)).startswith("api/v1/"):
                yield cls


def test_every_business_route_names_its_model_in_the_table():
    for view in set(_views(get_resolver().url_patterns)):
        instance = view()
        instance.action = None
        if not any(isinstance(p, IsBusinessPrincipal) for p in instance.get_permissions()):
            continue  # platform routes (master and internal keys)
        if view.__name__ in OUTSIDE_THE_TABLE:
            assert getattr(view, "access_model", None) is None
            continue
        assert getattr(view, "access_model", None) in ACCESS, view.__name__
