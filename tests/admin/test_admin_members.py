"""The members inline of the Business page: who may grant, change and take which role.

Only an owner grants or takes the owner role, a business always keeps an
owner, nobody changes their own membership; a refusal is a form error on the
page, never a 500, and nothing of the post is saved.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from businesses.models import Business, Membership, Role
from businesses.services import business_create, membership_add
from tests.admin import admin_url, form_post_data

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice_admin(alice):
    return membership_add(business=alice.business, email="ada@example.com", role=Role.ADMIN)[0].user


@pytest.fixture
def dave(alice, alice_admin):
    """A colleague from Alice's other business: someone the admin may add to the bakery."""
    cafe, _ = business_create(name="Alice's Cafe", owner_email=alice.owner.email)
    membership_add(business=cafe, email=alice_admin.email, role=Role.ADMIN)
    return membership_add(business=cafe, email="dave@example.com", role=Role.VIEWER)[0].user


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw-root")


def role_of(business: Business, user) -> str | None:
    return Membership.objects.filter(business=business, user=user).values_list("role", flat=True).first()


def post_members(client: Client, business: Business, *, roles=None, delete=(), add=()):
    """Post the Business page back with some member rows changed, deleted or added."""
    url = admin_url(business, "change")
    page = client.get(url)
    formset = page.context["inline_admin_formsets"][0].formset
    prefix = formset.prefix
    data = form_post_data(page)
    rows = {form.instance.user_id: i for i, form in enumerate(formset.forms)}
    for user, role in (roles or {}).items():
        data[f"{prefix}-{rows[user.pk]}-role"] = role
    for user in delete:
        data[f"{prefix}-{rows[user.pk]}-DELETE"] = "on"
    total = len(formset.forms)
    for n, (user, role) in enumerate(add, start=total):
        data |= {
            f"{prefix}-{n}-id": "",
            f"{prefix}-{n}-business": str(business.pk),
            f"{prefix}-{n}-user": str(user.pk),
            f"{prefix}-{n}-role": role,
        }
    data[f"{prefix}-TOTAL_FORMS"] = str(total + len(add))
    return client.post(url, data)


def refusal(response) -> str:
    """The page came back with the post refused: its errors, as shown."""
    assert response.status_code == 200, "the post was saved"
    formset = response.context["inline_admin_formsets"][0].formset
    texts = [str(e) for e in formset.non_form_errors()]
    texts += [str(e) for form in formset.forms for errors in form.errors.values() for e in errors]
    assert texts, "refused without saying why"
    html = response.content.decode()
    assert all(text in html for text in texts)
    return " ".join(texts)


# -- an admin cannot take the business ----------------------------------------------------


def test_an_admin_cannot_make_themselves_owner(alice, alice_admin):
    response = post_members(login(alice_admin), alice.business, roles={alice_admin: Role.OWNER})

    assert "own" in refusal(response)
    assert role_of(alice.business, alice_admin) == Role.ADMIN


def test_an_admin_cannot_demote_the_owner(alice, alice_admin):
    response = post_members(login(alice_admin), alice.business, roles={alice.owner: Role.VIEWER})

    assert "Only an owner" in refusal(response)
    assert role_of(alice.business, alice.owner) == Role.OWNER


def test_an_admin_cannot_delete_the_owners_membership(alice, alice_admin):
    response = post_members(login(alice_admin), alice.business, delete=[alice.owner])

    assert "Only an owner" in refusal(response)
    assert role_of(alice.business, alice.owner) == Role.OWNER


def test_an_admin_cannot_grant_the_owner_role(alice, alice_admin, alice_viewer, dave):
    client = login(alice_admin)

    promoted = post_members(client, alice.business, roles={alice_viewer: Role.OWNER})
    assert "Only an owner" in refusal(promoted)
    added = post_members(client, alice.business, add=[(dave, Role.OWNER)])
    assert "Only an owner" in refusal(added)

    assert role_of(alice.business, alice_viewer) == Role.VIEWER
    assert role_of(alice.business, dave) is None


def test_a_refused_row_saves_nothing_of_the_post(alice, alice_admin, alice_viewer):
    response = post_members(
        login(alice_admin), alice.business, roles={alice_viewer: Role.EDITOR, alice.owner: Role.ADMIN}
    )

    refusal(response)
    assert role_of(alice.business, alice_viewer) == Role.VIEWER
    assert role_of(alice.business, alice.owner) == Role.OWNER


def test_an_admin_still_manages_the_other_roles(alice, alice_admin, alice_viewer, dave):
    response = post_members(
        login(alice_admin),
        alice.business,
        roles={alice_viewer: Role.EDITOR},
        add=[(dave, Role.VIEWER)],
    )

    assert response.status_code == 302
    assert role_of(alice.business, alice_viewer) == Role.EDITOR
    assert role_of(alice.business, dave) == Role.VIEWER


# -- owners, and nobody's own role ---------------------------------------------------------


def test_nobody_changes_or_removes_their_own_membership(alice, alice_admin):
    membership_add(business=alice.business, email="olga@example.com", role=Role.OWNER)

    for user, change in (
        (alice.owner, {"roles": {alice.owner: Role.ADMIN}}),
        (alice.owner, {"delete": [alice.owner]}),
        (alice_admin, {"roles": {alice_admin: Role.VIEWER}}),
        (alice_admin, {"delete": [alice_admin]}),
    ):
        assert "own" in refusal(post_members(login(user), alice.business, **change))
    assert role_of(alice.business, alice.owner) == Role.OWNER
    assert role_of(alice.business, alice_admin) == Role.ADMIN


def test_an_owner_grants_and_takes_the_owner_role(alice, alice_admin):
    client = login(alice.owner)

    assert post_members(client, alice.business, roles={alice_admin: Role.OWNER}).status_code == 302
    assert role_of(alice.business, alice_admin) == Role.OWNER
    assert post_members(client, alice.business, roles={alice_admin: Role.EDITOR}).status_code == 302
    assert role_of(alice.business, alice_admin) == Role.EDITOR


def test_the_last_owner_stays_even_for_a_superuser(alice, alice_admin, superuser):
    client = login(superuser)

    assert "at least one owner" in refusal(post_members(client, alice.business, delete=[alice.owner]))
    demoted = post_members(client, alice.business, roles={alice.owner: Role.ADMIN})
    assert "at least one owner" in refusal(demoted)
    assert role_of(alice.business, alice.owner) == Role.OWNER

    # Handing the business over in one post is fine: an owner remains.
    handover = post_members(client, alice.business, roles={alice.owner: Role.ADMIN, alice_admin: Role.OWNER})
    assert handover.status_code == 302
    assert role_of(alice.business, alice_admin) == Role.OWNER
    assert role_of(alice.business, alice.owner) == Role.ADMIN
    assert Business.objects.get(pk=alice.business.pk).owner == alice_admin


def test_whose_membership_a_row_is_cannot_be_changed(alice, alice_admin, dave):
    client = login(alice_admin)
    page = client.get(admin_url(alice.business, "change"))
    formset = page.context["inline_admin_formsets"][0].formset
    row = next(i for i, form in enumerate(formset.forms) if form.instance.user_id == alice.owner.pk)
    # Moving the owner's row to someone else would hand them the business.
    data = form_post_data(page) | {f"{formset.prefix}-{row}-user": str(dave.pk)}

    client.post(admin_url(alice.business, "change"), data)

    assert role_of(alice.business, alice.owner) == Role.OWNER
    assert role_of(alice.business, dave) is None
