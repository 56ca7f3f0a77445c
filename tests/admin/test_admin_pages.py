"""Every admin page renders, every model admin is tenant-scoped, big lists never count everything."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from businesses.models import Business
from businesses.services import api_key_authenticate
from channels_app.models import WebhookEvent
from conversations.models import Author, Direction, Message, MessageStatus
from icmp.admin_inlines import TenantInlineMixin
from icmp.admin_paginator import BoundedCountPaginator
from icmp.admin_tenancy import TenantAdminMixin, TenantRelatedFilter
from tests.admin import LARGE_TABLES, TENANT_MODELS, admin_url, objects_of
from tests.conftest import make_tenant

pytestmark = pytest.mark.django_db

User = get_user_model()
PLATFORM_ADMINS = {User, Group}


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root@example.com", "root@example.com", "pw-root")


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_registered_model_admin_is_tenant_scoped():
    unscoped = [
        model.__name__
        for model, model_admin in admin.site._registry.items()
        if model not in PLATFORM_ADMINS and not isinstance(model_admin, TenantAdminMixin)
    ]
    assert unscoped == []
    assert set(TENANT_MODELS) <= set(admin.site._registry)


def test_every_inline_and_related_filter_is_tenant_scoped():
    problems = []
    for model, model_admin in admin.site._registry.items():
        if model in PLATFORM_ADMINS:
            continue
        for inline in model_admin.inlines:
            if not issubclass(inline, TenantInlineMixin):
                problems.append(f"{model.__name__} inline {inline.__name__}")
        for item in model_admin.list_filter:
            # A plain related filter lists every tenant's rows in the sidebar.
            name = item if isinstance(item, str) else item[0] if isinstance(item, tuple) else None
            if name is None:
                continue
            field = model._meta.get_field(name.split("__")[0])
            filter_class = item[1] if isinstance(item, tuple) else None
            if field.is_relation and not (filter_class and issubclass(filter_class, TenantRelatedFilter)):
                problems.append(f"{model.__name__} filter {name}")
    assert problems == []


@pytest.mark.parametrize("model", LARGE_TABLES, ids=lambda m: m.__name__)
def test_message_sized_tables_use_the_bounded_paginator(model):
    model_admin = admin.site._registry[model]
    assert model_admin.paginator is BoundedCountPaginator
    assert model_admin.show_full_result_count is False


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_a_superuser_opens_every_list_and_object_page(alice, bob, superuser, model):
    objects = objects_of(alice)
    client = login(superuser)

    assert client.get(admin_url(model, "changelist")).status_code == 200
    assert client.get(admin_url(model, "changelist"), {"q": "x"}).status_code == 200
    obj = objects[model]
    assert client.get(admin_url(obj, "change")).status_code == 200
    assert client.get(admin_url(obj, "history")).status_code == 200
    request = RequestFactory().get("/admin/")
    request.user = superuser
    if admin.site._registry[model].has_add_permission(request):
        assert client.get(admin_url(model, "add")).status_code == 200


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_a_member_opens_every_list_with_each_filter_applied(alice, model):
    objects = objects_of(alice)
    client = login(alice.owner)
    base = admin_url(model, "changelist")

    response = client.get(base)
    assert response.status_code == 200
    for spec in response.context["cl"].filter_specs:
        for choice in spec.choices(response.context["cl"]):
            query = choice["query_string"]
            assert client.get(base + query).status_code == 200, query
    assert objects[model]


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_list_pages_run_as_many_queries_for_three_tenants_as_for_two(alice, bob, superuser, model):
    objects_of(alice)
    objects_of(bob)
    client = login(superuser)
    url = admin_url(model, "changelist")
    client.get(url)  # warm caches (content types, sessions)

    with CaptureQueriesContext(connection) as two:
        client.get(url)
    objects_of(make_tenant("Carol's Cafe", "carol@example.com", "3088205633"))
    with CaptureQueriesContext(connection) as three:
        client.get(url)

    assert len(three) == len(two), [q["sql"][:120] for q in three.captured_queries]


def test_a_superuser_creates_a_business_with_its_first_key(superuser):
    response = login(superuser).post(
        admin_url(Business, "add"),
        {"name": "Dora's Deli", "owner_email": "dora@example.com", "config": json.dumps({"language": "en"})},
        follow=True,
    )

    assert response.status_code == 200
    business = Business.objects.get(name="Dora's Deli")
    assert business.owner.email == "dora@example.com"
    assert business.memberships.get().role == "owner"
    assert business.stages.filter(is_initial=True).exists()
    raw_key = response.context["new_key"].raw_key
    assert raw_key in response.content.decode()
    assert api_key_authenticate(raw_key=raw_key).business == business


def test_a_new_business_needs_a_valid_config(superuser):
    response = login(superuser).post(
        admin_url(Business, "add"),
        {"name": "Eve's", "owner_email": "eve@example.com", "config": json.dumps({"website": 5})},
    )

    assert response.status_code == 200
    assert "website" in " ".join(response.context["adminform"].form.errors["config"])
    assert not Business.objects.filter(name="Eve's").exists()


def _counts(queries) -> list[str]:
    return [q["sql"] for q in queries if re.search(r"\bCOUNT\(", q["sql"], re.IGNORECASE)]


@pytest.mark.parametrize("model", LARGE_TABLES, ids=lambda m: m.__name__)
def test_changelists_of_big_tables_never_count_the_whole_table(alice, bob, superuser, model):
    objects_of(alice)
    client = login(superuser)
    table = model._meta.db_table

    # Raw webhook bodies are the platform's: only superusers list them.
    for user in (superuser,) if model is WebhookEvent else (superuser, alice.owner):
        client = login(user)
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(admin_url(model, "changelist"))
        assert response.status_code == 200
        counts = [sql for sql in _counts(ctx.captured_queries) if table in sql]
        assert counts, "the paginator should count (a bounded number of) rows"
        for sql in counts:
            assert "LIMIT" in sql.upper(), sql


def test_the_bounded_paginator_reports_a_floor_beyond_its_limit(alice, superuser, monkeypatch):
    monkeypatch.setattr(BoundedCountPaginator, "count_limit", 3)
    for n in range(5):
        Message.objects.create(
            business=alice.business,
            conversation=alice.conversation,
            channel_account=alice.channel,
            direction=Direction.IN,
            author=Author.CUSTOMER,
            text=f"message {n}",
            status=MessageStatus.RECEIVED,
        )

    response = login(superuser).get(admin_url(Message, "changelist"))

    assert response.context["cl"].result_count == 4
    assert "More than 3 messages" in response.content.decode()


def test_the_admin_carries_the_back_office_title(alice):
    response = login(alice.owner).get("/admin/")

    assert "ICMP back office" in response.content.decode()


@pytest.mark.parametrize(
    ("body", "shown"),
    [('{"a": ' + "[" * 900 + "]" * 900 + "}", "[" * 900), ('{"a": "caf\\ud800"}', "ud800")],
    ids=["nested-900-deep", "lone-surrogate"],
)
def test_a_stored_webhook_body_that_cannot_be_pretty_printed_renders_as_text(superuser, body, shown):
    # Deep nesting was stored before the webhook refused it; lone surrogates are kept
    # (storing cleans them): the page shows the raw text instead of a 500.
    event = WebhookEvent.objects.create(channel="whatsapp", body=body, status="failed")

    response = login(superuser).get(admin_url(event, "change"))

    assert response.status_code == 200
    assert shown in response.content.decode()
