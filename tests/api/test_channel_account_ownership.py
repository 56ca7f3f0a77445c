"""A Meta id is public: connecting one needs a token that Meta lets act for it (or the operator's word)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from channels_app.models import ChannelAccount, OwnershipCheck
from tests.admin import admin_url, form_post_data

URL = "/api/v1/channel-accounts/"
GOOD = "EAAG-token-that-controls-it"
OTHER = "EAAG-token-of-someone-else"
NUMBER = "3300112233"
PAGE = "4400112233"
IG = "17841400000000099"


@pytest.fixture
def meta(fake_graph):
    fake_graph.owns(GOOD, "whatsapp", NUMBER, name="Alice Bakery")
    fake_graph.owns(OTHER, "whatsapp", "9999999999")
    return fake_graph


def body(kind="whatsapp", external_id=NUMBER, token=GOOD, **extra) -> dict:
    return {"kind": kind, "external_id": external_id, "name": "Line", "access_token": token, **extra}


def graph_gets(meta) -> list[str]:
    return [request.path for request in meta.requests if request.method == "GET"]


def test_a_token_that_controls_the_number_connects_it_and_records_the_proof(alice, meta):
    response = alice.client().post(URL, body(), format="json")

    assert response.status_code == 201, response.content
    row = response.json()
    assert row["ownership_check"] == "graph"
    assert row["ownership_label"] == "Alice Bakery +1 555 0100"
    assert row["ownership_checked_at"]
    request = meta.requests[-1]
    assert request.path.startswith(f"/v25.0/{NUMBER}?fields=")
    assert request.headers["Authorization"] == f"Bearer {GOOD}"


def test_claiming_another_businesss_public_id_with_an_unrelated_token_is_refused(alice, bob, meta):
    # Bob knows Alice's number id but holds no token for it.
    response = bob.client().post(URL, body(external_id=alice.channel.external_id, token=OTHER), format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    # The check comes first: Bob does not even learn that the id is connected.
    assert error["code"] == "ownership_unproven"
    assert "access_token" in error["details"]
    assert "already" not in error["message"]
    assert ChannelAccount.objects.filter(external_id=alice.channel.external_id).count() == 1


def test_a_new_unclaimed_id_with_a_token_for_another_number_stores_nothing(alice, meta):
    response = alice.client().post(URL, body(token=OTHER), format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (400, "ownership_unproven")
    assert not ChannelAccount.objects.filter(external_id=NUMBER).exists()


def test_a_meta_account_without_a_token_cannot_be_proven(alice, meta):
    response = alice.client().post(URL, body(token=""), format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (400, "ownership_unproven")
    assert graph_gets(meta) == []


def test_meta_unreachable_is_a_503_and_stores_nothing(alice, meta):
    meta.fail(503, {"error": {"message": "Service unavailable", "code": 2}})

    response = alice.client().post(URL, body(), format="json")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "ownership_check_unavailable"
    assert not ChannelAccount.objects.filter(external_id=NUMBER).exists()


def test_a_page_token_proves_its_own_page_only(alice, meta):
    meta.owns(GOOD, "messenger", PAGE)

    assert alice.client().post(URL, body("messenger", "5500000000"), format="json").status_code == 400
    response = alice.client().post(URL, body("messenger", PAGE), format="json")

    assert response.status_code == 201
    assert meta.requests[-1].path.startswith("/v25.0/me?fields=")


def test_instagram_accepts_an_instagram_login_token_or_a_page_token_linked_to_the_account(alice, meta):
    meta.owns("ig-user-token", "instagram", IG, name="alice.bakery")
    meta.grant("page-token", "me", {"id": PAGE, "name": "Alice", "instagram_business_account": {"id": "178"}})

    by_user = alice.client().post(URL, body("instagram", IG, "ig-user-token"), format="json")
    by_page = alice.client().post(URL, body("instagram", "178", "page-token"), format="json")
    unlinked = alice.client().post(URL, body("instagram", "179", "page-token"), format="json")

    assert (by_user.status_code, by_user.json()["ownership_label"]) == (201, "alice.bakery")
    assert (by_page.status_code, by_page.json()["ownership_check"]) == (201, "graph")
    assert (unlinked.status_code, unlinked.json()["error"]["code"]) == (400, "ownership_unproven")


def test_a_new_id_or_token_is_proven_again_and_a_rename_asks_meta_nothing(alice, meta):
    created = alice.client().post(URL, body(), format="json").json()
    detail = f"{URL}{created['id']}/"
    before = len(meta.requests)

    assert alice.client().patch(detail, {"name": "Renamed"}, format="json").status_code == 200
    assert len(meta.requests) == before
    moved = alice.client().patch(detail, {"external_id": "9999999999"}, format="json")
    swapped = alice.client().patch(detail, {"access_token": OTHER}, format="json")

    assert (moved.status_code, moved.json()["error"]["code"]) == (400, "ownership_unproven")
    assert (swapped.status_code, swapped.json()["error"]["code"]) == (400, "ownership_unproven")
    account = ChannelAccount.objects.get(pk=created["id"])
    assert (account.external_id, account.access_token) == (NUMBER, GOOD)
    both = alice.client().patch(detail, {"external_id": "9999999999", "access_token": OTHER}, format="json")
    assert both.status_code == 200
    assert ChannelAccount.objects.get(pk=created["id"]).external_id == "9999999999"


# -- the platform operator's override --------------------------------------------------


def test_the_master_key_connects_an_account_without_asking_meta(alice, master_client, meta):
    url = f"/api/v1/businesses/{alice.business.pk}/channel-accounts/"

    response = master_client.post(url, body(token="unverifiable"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["ownership_check"] == OwnershipCheck.OPERATOR
    assert ChannelAccount.objects.get(external_id=NUMBER).business == alice.business
    assert graph_gets(meta) == []
    again = master_client.post(url, body(token="unverifiable"), format="json")
    assert again.json()["error"]["code"] == "already_connected"


def test_only_the_master_key_may_override(alice, bob, internal_client, meta):
    url = f"/api/v1/businesses/{alice.business.pk}/channel-accounts/"

    assert alice.client().post(url, body(token="x"), format="json").status_code == 403
    assert bob.client().post(url, body(token="x"), format="json").status_code == 403
    assert internal_client.post(url, body(token="x"), format="json").status_code == 403
    assert not ChannelAccount.objects.filter(external_id=NUMBER).exists()


def test_the_override_for_an_unknown_business_is_404(master_client, db):
    url = "/api/v1/businesses/0192d3a4-0000-7000-8000-000000000000/channel-accounts/"

    response = master_client.post(url, body(), format="json")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# -- the admin ---------------------------------------------------------------------------


def _admin_add(client: Client, business, token: str, **extra):
    return client.post(
        admin_url(ChannelAccount, "add"),
        {
            "business": business.pk,
            "kind": "whatsapp",
            "external_id": NUMBER,
            "name": "Line",
            "is_active": "on",
            "access_token": token,
            **extra,
        },
    )


def test_the_admin_refuses_an_unproven_id_with_a_form_error(alice, meta):
    client = Client()
    client.force_login(alice.owner)

    response = _admin_add(client, alice.business, OTHER)

    assert response.status_code == 200
    assert "Meta refused the access token" in response.content.decode()
    assert not ChannelAccount.objects.filter(external_id=NUMBER).exists()
    assert _admin_add(client, alice.business, GOOD).status_code == 302
    assert ChannelAccount.objects.get(external_id=NUMBER).ownership_check == OwnershipCheck.GRAPH


def test_staff_cannot_approve_without_meta_but_the_operator_can(alice, meta):
    staff = Client()
    staff.force_login(alice.owner)
    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw"))

    assert _admin_add(staff, alice.business, OTHER, operator_approved="on").status_code == 200
    assert not ChannelAccount.objects.filter(external_id=NUMBER).exists()
    assert _admin_add(root, alice.business, OTHER, operator_approved="on").status_code == 302
    assert ChannelAccount.objects.get(external_id=NUMBER).ownership_check == OwnershipCheck.OPERATOR


def _form_errors(response) -> dict[str, list[str]]:
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


def test_the_admin_never_says_whether_an_id_is_taken_before_the_proof(alice, bob, meta):
    ChannelAccount.objects.create(
        business=alice.business, kind="whatsapp", external_id=NUMBER, name="A", access_token=GOOD
    )
    client = Client()
    client.force_login(bob.owner)

    taken = _admin_add(client, bob.business, OTHER)
    free = _admin_add(client, bob.business, OTHER, external_id="3300998877")

    assert taken.status_code == free.status_code == 200
    assert "already exists" not in taken.content.decode()
    assert list(_form_errors(taken)) == list(_form_errors(free)) == ["access_token"]
    assert "Meta refused the access token" in _form_errors(taken)["access_token"][0]
    assert ChannelAccount.objects.get(external_id=NUMBER).business == alice.business


def test_a_proven_id_that_is_taken_is_answered_after_the_proof(alice, bob, meta):
    ChannelAccount.objects.create(
        business=alice.business, kind="whatsapp", external_id=NUMBER, name="A", access_token=GOOD
    )
    client = Client()
    client.force_login(bob.owner)

    response = _admin_add(client, bob.business, GOOD)

    # The service's answer, shown as a message on the page: the same as the API's.
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "already connected" in page and "already exists" not in page
    assert ChannelAccount.objects.filter(external_id=NUMBER).count() == 1


# -- the admin never asks Meta inside its transaction -----------------------------------


@pytest.fixture
def graph_depths(monkeypatch):
    """The transaction depth of every ownership Graph call, relative to the test's own."""
    from django.db import connection

    from channels_app.adapters import ownership

    real_get = ownership._get
    outside = len(connection.atomic_blocks)
    depths: list[int] = []

    def spy(*args, **kwargs):
        depths.append(len(connection.atomic_blocks) - outside)
        return real_get(*args, **kwargs)

    monkeypatch.setattr(ownership, "_get", spy)
    return depths


def _alices_number(alice) -> ChannelAccount:
    return ChannelAccount.objects.create(
        business=alice.business, kind="whatsapp", external_id=NUMBER, name="Line", access_token=GOOD
    )


def test_a_reposted_token_with_a_stray_space_is_the_same_token(alice, meta, graph_depths):
    account = _alices_number(alice)
    client = Client()
    client.force_login(alice.owner)
    data = form_post_data(client.get(admin_url(account, "change")))

    response = client.post(
        admin_url(account, "change"), {**data, "name": "Renamed", "access_token": GOOD + " "}
    )

    assert response.status_code == 302
    assert graph_depths == []  # neither a new id nor a new token: Meta is not asked at all
    account.refresh_from_db()
    assert (account.name, account.access_token) == ("Renamed", GOOD)


def test_an_operators_unticked_approval_is_proven_before_the_transaction(alice, meta, graph_depths):
    root = Client()
    root.force_login(get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw"))

    response = _admin_add(root, alice.business, GOOD, operator_approved="false")

    assert response.status_code == 302
    assert graph_depths and set(graph_depths) == {0}
    assert ChannelAccount.objects.get(external_id=NUMBER).ownership_check == OwnershipCheck.GRAPH
    assert (
        _admin_add(
            root, alice.business, OTHER, operator_approved="false", external_id="3300998877"
        ).status_code
        == 200
    )
    assert set(graph_depths) == {0}
    assert not ChannelAccount.objects.filter(external_id="3300998877").exists()


def test_the_admins_save_refuses_rather_than_asks_meta_when_no_proof_was_made(
    alice, meta, graph_depths, monkeypatch
):
    from channels_app.admin import ChannelAccountAdmin

    account = _alices_number(alice)
    meta.owns("EAAG-new-token", "whatsapp", NUMBER)
    client = Client()
    client.force_login(alice.owner)
    data = form_post_data(client.get(admin_url(account, "change")))
    # Should the pre-transaction decision ever disagree with the form again, the save still may not call Meta.
    monkeypatch.setattr(ChannelAccountAdmin, "_ownership_from_post", lambda self, request, object_id: None)

    response = client.post(
        admin_url(account, "change"), {**data, "access_token": "EAAG-new-token"}, follow=True
    )

    assert graph_depths == []
    assert "Meta was not asked about this id and token" in response.content.decode()
    account.refresh_from_db()
    assert account.access_token == GOOD


def test_a_post_to_a_malformed_account_id_is_a_404(alice, meta):
    client = Client()
    client.force_login(alice.owner)

    response = client.post(
        "/admin/channels_app/channelaccount/not-a-uuid/change/", {"external_id": NUMBER, "access_token": GOOD}
    )

    assert response.status_code == 404
