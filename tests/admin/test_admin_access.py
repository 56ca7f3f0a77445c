"""Every admin page obeys `icmp.access.ACCESS`, the table the API obeys too.

For every registered model and every role, the admin's own pages say who may
view, add, change and delete, which fields a change form (and an add form)
lets the role edit, and POSTs show that a forbidden change is never saved.
Each role's walk runs in a transaction rolled back afterwards, so every role
starts from the same rows.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models, transaction
from django.test import Client

from businesses.models import Agent, Business, Membership, Role
from businesses.services import agent_create, membership_add
from channels_app.models import ChannelAccount, ChannelKind, WebhookEvent
from conversations.models import Contact
from icmp.access import ACCESS, access_for
from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind
from tests.admin import TENANT_MODELS, admin_url, form_post_data, objects_of

pytestmark = pytest.mark.django_db

ROLES = (Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER)
TEMPLATE_KIND_OF = {
    "selection_template": TemplateKind.STAGE_SELECTION,
    "extraction_template": TemplateKind.DATA_EXTRACTION,
    "response_template": TemplateKind.RESPONSE_GENERATION,
}
CONTENT_OF_KIND = {
    TemplateKind.STAGE_SELECTION: "Pick a stage for {{ business.name }}.",
    TemplateKind.DATA_EXTRACTION: "Extract data for {{ business.name }}.",
    TemplateKind.RESPONSE_GENERATION: "Walked for {{ business.name }}.",
}


def label(model: type[models.Model]) -> str:
    return model._meta.label_lower


@pytest.fixture
def staff(alice) -> dict[str, Any]:
    users = {Role.OWNER: alice.owner}
    for role in (Role.ADMIN, Role.EDITOR, Role.VIEWER):
        membership, _ = membership_add(business=alice.business, email=f"{role}@example.com", role=role)
        users[role] = membership.user
    return users


@pytest.fixture
def world(alice, bob, staff) -> dict[str, Any]:
    """Alice's rows, and a second one of each kind a foreign key may be moved to."""
    business = alice.business
    rows = objects_of(alice)
    # The default agent is never deletable (a domain rule, not a role rule): walk another one.
    rows[Agent] = agent_create(business=business, name="Walker")
    rows[Stage] = Stage.objects.create(business=business, key="walk", name="Walk", order=5)
    for kind, content in CONTENT_OF_KIND.items():
        if not PromptTemplate.objects.filter(business=business, kind=kind).exists():
            PromptTemplate.objects.create(business=business, kind=kind, name=f"{kind} mine", content=content)
    second_channel = ChannelAccount.objects.create(
        business=business, kind=ChannelKind.WHATSAPP, external_id="1065400000", name="Second line"
    )
    Contact.objects.create(business=business, channel_account=second_channel, external_id="555", name="Other")
    return {"rows": rows, "bob": bob, "staff": staff}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- new values for every kind of field --------------------------------------------------


def _other_row(field: models.ForeignKey, current: Any, world: dict[str, Any]) -> models.Model | None:
    related = field.related_model
    business = world["rows"][Business]
    if related is Business:
        return world["bob"].business  # another tenant: moving a row there is never allowed
    if related is get_user_model():
        users = [u for u in world["staff"].values() if u.pk != current]
        return users[0]
    queryset = related._default_manager.exclude(pk=current)
    if any(f.name == "business" for f in related._meta.get_fields()):
        queryset = queryset.filter(business=business)
    if field.name in TEMPLATE_KIND_OF:
        queryset = queryset.filter(kind=TEMPLATE_KIND_OF[field.name])
    return queryset.order_by("pk").first()


def new_value(obj: models.Model, field: models.Field, world: dict[str, Any]) -> Any:
    """A valid value different from the current one (what an allowed change would save)."""
    current = getattr(obj, field.attname)
    name = field.name
    if isinstance(field, models.ForeignKey):
        return _other_row(field, current, world)
    if field.choices:
        return next(value for value, _ in field.choices if value != current)
    if isinstance(field, models.BooleanField):
        return not current
    if isinstance(field, models.DecimalField):
        return Decimal("0.70") if current != Decimal("0.70") else Decimal("0.50")
    if isinstance(field, models.IntegerField):
        return (current or 0) + 1
    if isinstance(field, models.DateTimeField):
        return datetime(2099, 1, 1, 12, 0, tzinfo=datetime.now().astimezone().tzinfo)
    if isinstance(field, models.JSONField):
        if name == "config":
            return {"language": "fr" if (current or {}).get("language") != "fr" else "de"}
        return {"type": "object", "properties": {"walked": {"type": "string"}}}
    if name == "content":
        return CONTENT_OF_KIND[obj.kind].replace("for", "again for")
    if name == "whatsapp_window_template_language":
        return "pt_BR" if current != "pt_BR" else "en_US"
    if name in ("key", "slug"):
        return f"{current}-walked"
    if name == "external_id":
        return f"{current}7"
    return f"{current} walked".strip()


def post_entries(field: models.Field, value: Any) -> dict[str, Any]:
    """How a browser posts `value` for `field` (booleans: present or absent)."""
    name = field.name
    if isinstance(value, bool):
        return {name: "on"} if value else {}
    if isinstance(value, models.Model):
        return {name: str(value.pk)}
    if isinstance(value, datetime):
        # The admin's split widget, and the plain name in case a form uses one input.
        return {f"{name}_0": "2099-01-01", f"{name}_1": "12:00:00", name: "2099-01-01 12:00:00"}
    if isinstance(value, dict):
        return {name: json.dumps(value)}
    return {name: str(value)}


def stored(obj: models.Model, field: models.Field) -> Any:
    value = getattr(type(obj)._default_manager.get(pk=obj.pk), field.attname)
    return value


def expected(field: models.Field, value: Any) -> Any:
    return value.pk if isinstance(value, models.Model) else value


def data_fields(model: type[models.Model]) -> list[models.Field]:
    """The model's fields a person could set (what a change form could offer)."""
    return [
        f
        for f in model._meta.concrete_fields
        if f.editable and not f.primary_key and f.name not in ("created_at", "updated_at")
    ]


# Kept by the system on every save, whoever saves: `updated_at`, and the business's config
# version (businesses/config_version.py), which any save of the business bumps.
SYSTEM_FIELDS = ("updated_at", "config_version")


def snapshot(obj: models.Model) -> dict[str, Any]:
    row = type(obj)._default_manager.get(pk=obj.pk)
    return {
        f.attname: getattr(row, f.attname)
        for f in type(obj)._meta.concrete_fields
        if f.name not in SYSTEM_FIELDS
    }


def editable(admin_form, model: type[models.Model], *, inline_of: str | None = None) -> set[str]:
    """Model fields an admin form (or inline row) lets its user edit, as the page renders it.

    Read-only and disabled fields only show a value; an inline row also
    carries its own id and the parent's key, hidden: not data.
    """
    names = {f.name for f in model._meta.get_fields()}
    if inline_of is not None:
        names -= {model._meta.pk.name, inline_of}
    found = set()
    for fieldset in admin_form:
        for line in fieldset:
            for field in line:
                if field.is_readonly or field.field.field.disabled:
                    continue
                if field.field.name in names:
                    found.add(field.field.name)
    return found


# -- the walk --------------------------------------------------------------------------------


def test_the_table_has_a_row_for_every_registered_model_and_inline():
    labels = set()
    for model, model_admin in admin.site._registry.items():
        if model in TENANT_MODELS or model is WebhookEvent:  # raw events: a row that grants no role
            labels.add(label(model))
            labels |= {label(inline.model) for inline in model_admin.inlines}
    assert labels == set(ACCESS)


def _walk_change_form(client, model, obj, role, world) -> None:
    rules = access_for(label(model))
    may_change = role in rules.change
    url = admin_url(obj, "change")
    page = client.get(url)
    assert page.status_code == 200
    context = page.context
    assert context["has_view_permission"] is True
    assert context["has_add_permission"] is (role in rules.add)
    assert context["has_change_permission"] is may_change
    assert context["has_delete_permission"] is (role in rules.delete)
    assert editable(context["adminform"], model) == (set(rules.change_fields) if may_change else set())

    fields = data_fields(model)
    before = snapshot(obj)
    forbidden = [f for f in fields if not may_change or f.name not in rules.change_fields]
    attempt = form_post_data(page) if may_change else {}
    for field in forbidden:
        attempt |= post_entries(field, new_value(obj, field, world))
    response = client.post(url, attempt)
    if may_change:
        assert response.status_code == 302, context["adminform"].form.errors
    else:
        assert response.status_code == 403
    assert snapshot(obj) == before, f"{role} changed a forbidden field of {model.__name__}"

    if may_change:
        allowed = [f for f in fields if f.name in rules.change_fields]
        values = {f.name: new_value(obj, f, world) for f in allowed}
        attempt = form_post_data(page)
        for field in allowed:
            attempt.pop(field.name, None)
            attempt |= post_entries(field, values[field.name])
        response = client.post(url, attempt)
        assert response.status_code == 302, response.context and response.context["adminform"].form.errors
        for field in allowed:
            assert stored(obj, field) == expected(field, values[field.name]), (role, field.name)

    if role not in rules.delete:
        assert client.post(admin_url(obj, "delete"), {"post": "yes"}).status_code == 403
        assert type(obj)._default_manager.filter(pk=obj.pk).exists()


def _walk_add_form(client, model, role) -> None:
    rules = access_for(label(model))
    page = client.get(admin_url(model, "add"))
    if role not in rules.add:
        assert page.status_code == 403
        count = model._default_manager.count()
        assert client.post(admin_url(model, "add"), {"name": "Forged"}).status_code == 403
        assert model._default_manager.count() == count
        return
    assert page.status_code == 200
    assert editable(page.context["adminform"], model) - {"business"} == set(rules.add_fields)


@pytest.mark.parametrize("model", TENANT_MODELS, ids=[m.__name__ for m in TENANT_MODELS])
def test_every_role_gets_exactly_the_tables_rights_on_every_admin_page(world, model, fake_graph):
    fake_graph.trust_every_token()  # a new number id is proven with Meta; ownership is tested elsewhere
    obj = world["rows"][model]
    for role in ROLES:
        with transaction.atomic():
            client = login(world["staff"][role])
            _walk_change_form(client, model, obj, role, world)
            _walk_add_form(client, model, role)
            transaction.set_rollback(True)


def test_every_role_gets_exactly_the_tables_rights_on_the_members_inline(world):
    business = world["rows"][Business]
    rules = access_for(label(Membership))
    target = membership_add(business=business, email="member@example.com", role=Role.EDITOR)[0]
    for role in ROLES:
        with transaction.atomic():
            client = login(world["staff"][role])
            url = admin_url(business, "change")
            page = client.get(url)
            inline = page.context["inline_admin_formsets"][0]
            assert inline.has_view_permission is True
            assert inline.has_add_permission is (role in rules.add)
            assert inline.has_change_permission is (role in rules.change)
            assert inline.has_delete_permission is (role in rules.delete)
            formset = inline.formset
            rows = list(inline)
            row = next(i for i, f in enumerate(formset.forms) if f.instance.pk == target.pk)
            may_change = role in rules.change
            assert editable(rows[row], Membership, inline_of="business") == (
                set(rules.change_fields) if may_change else set()
            )
            if role in rules.add:
                # The last row is the blank one "Add another" copies.
                assert rows[-1].form.prefix.endswith("__prefix__")
                assert editable(rows[-1], Membership, inline_of="business") == set(rules.add_fields)

            if may_change:
                prefix = formset.prefix
                other = world["staff"][Role.VIEWER]
                attempt = form_post_data(page) | {f"{prefix}-{row}-user": str(other.pk)}
                attempt[f"{prefix}-{row}-role"] = Role.VIEWER
                response = client.post(url, attempt)
                assert response.status_code == 302
                target.refresh_from_db()
                # The role is the table's to change; whose membership it is, never.
                assert (target.user.email, target.role) == ("member@example.com", Role.VIEWER)
            else:
                response = client.post(url, {"name": "Renamed"})
                assert response.status_code == 403
                target.refresh_from_db()
                assert target.role == Role.EDITOR
            transaction.set_rollback(True)
