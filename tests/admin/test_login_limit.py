"""Brute-force limit on /admin/login/: per (username, address), plus per username.

Everything goes through the real login form, as an attacker would.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client, override_settings

LOGIN = "/admin/login/"
ALICE, ALICE_PASSWORD = "alice@example.com", "pw-alice@example.com"
BOB, BOB_PASSWORD = "bob@example.com", "pw-bob@example.com"
LIMIT = 5  # LOGIN_FAILURE_LIMIT's default


@pytest.fixture
def people(alice, bob):
    """Two owners with passwords (the conftest tenants)."""


def attempt(username: str, password: str, *, address: str = "203.0.113.7", forwarded: str | None = None):
    client = Client()
    extra = {"REMOTE_ADDR": address}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    response = client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"}, **extra)
    return client, response


def assert_logged_in(client: Client, response) -> None:
    assert response.status_code == 302, response.content.decode()[:500]
    assert response["Location"] == "/admin/"
    assert "_auth_user_id" in client.session


def assert_locked_out(client: Client, response) -> None:
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed logins" in page
    assert "15 minutes" in page
    assert response["Retry-After"] == "900"
    assert "_auth_user_id" not in client.session


def fail(username: str, times: int, **where) -> list:
    return [attempt(username, "wrong password", **where)[1].status_code for _ in range(times)]


def test_failures_lock_the_account_at_that_address_even_for_the_right_password(people):
    statuses = fail(ALICE, LIMIT)

    # Ordinary "wrong password" pages, then the lockout page from the limit on.
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert_locked_out(*attempt(ALICE, ALICE_PASSWORD))


def test_another_user_at_the_same_address_still_logs_in(people):
    fail(ALICE, LIMIT)

    assert_logged_in(*attempt(BOB, BOB_PASSWORD))
    assert_locked_out(*attempt(ALICE, ALICE_PASSWORD))


def test_the_same_user_from_another_address_still_logs_in(people):
    fail(ALICE, LIMIT)

    assert_logged_in(*attempt(ALICE, ALICE_PASSWORD, address="198.51.100.20"))


def test_a_forged_x_forwarded_for_does_not_escape_the_limit_without_trusted_proxies(people):
    statuses = [
        attempt(ALICE, "wrong password", forwarded=f"192.0.2.{n}")[1].status_code for n in range(LIMIT)
    ]

    assert statuses[-1] == 429
    assert_locked_out(*attempt(ALICE, ALICE_PASSWORD, forwarded="192.0.2.200"))
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.7"}


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_trusted_proxy_the_address_is_the_one_the_proxy_saw(people):
    proxy = "10.0.0.2"
    # The client prepends forged hops; the proxy appends the address it saw.
    for n in range(LIMIT):
        attempt(ALICE, "wrong password", address=proxy, forwarded=f"192.0.2.{n}, 203.0.113.7")

    assert_locked_out(*attempt(ALICE, ALICE_PASSWORD, address=proxy, forwarded="192.0.2.99, 203.0.113.7"))
    # Someone else behind the same proxy is another address.
    assert_logged_in(*attempt(ALICE, ALICE_PASSWORD, address=proxy, forwarded="198.51.100.20"))


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_a_hop_that_is_not_an_address_falls_back_to_the_connecting_address(people):
    _, response = attempt(ALICE, "wrong password", address="10.0.0.2", forwarded="not-an-address")

    assert response.status_code == 200
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["10.0.0.2"]


@override_settings(LOGIN_FAILURE_LIMIT_PER_USERNAME=8)
def test_failures_spread_over_many_addresses_lock_the_username_everywhere(people):
    statuses = [attempt(ALICE, "wrong password", address=f"198.51.100.{n}")[1].status_code for n in range(8)]

    assert statuses == [200] * 7 + [429]
    assert_locked_out(*attempt(ALICE, ALICE_PASSWORD, address="192.0.2.1"))
    assert_logged_in(*attempt(BOB, BOB_PASSWORD, address="198.51.100.1"))


def test_the_lock_ends_after_the_cool_off(people):
    fail(ALICE, LIMIT)
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16)
    )

    assert_logged_in(*attempt(ALICE, ALICE_PASSWORD))


def test_a_successful_login_clears_earlier_failures(people):
    fail(ALICE, LIMIT - 1)
    assert_logged_in(*attempt(ALICE, ALICE_PASSWORD))

    assert fail(ALICE, LIMIT - 1) == [200] * (LIMIT - 1)
    assert_logged_in(*attempt(ALICE, ALICE_PASSWORD))


def test_an_operator_lifts_a_lock_with_the_management_command(people):
    fail(ALICE, LIMIT)

    call_command("axes_reset_username", ALICE, stdout=StringIO())

    assert_logged_in(*attempt(ALICE, ALICE_PASSWORD))
