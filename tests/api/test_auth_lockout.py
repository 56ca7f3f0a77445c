"""Failed-key lockout and per-address throttles: a valid key always works, and
X-Forwarded-For is believed only through TRUSTED_PROXY_COUNT proxies."""

from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from businesses.models import APIKey
from icmp.api import throttling
from tests.conftest import MASTER_KEY

CHECK = "/api/v1/auth/check/"
SCHEMA = "/api/schema/?format=json"


def _get(raw_key: str, *, address: str = "203.0.113.7", forwarded: str | None = None):
    client = APIClient(REMOTE_ADDR=address)
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client.get(CHECK, HTTP_AUTHORIZATION=f"Api-Key {raw_key}", **extra)


def _error_code(response) -> str:
    body = json.loads(response.content)
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def _prefix(tenant) -> str:
    return APIKey.objects.get(business=tenant.business).prefix


def test_forty_bad_keys_from_one_address_never_lock_out_valid_keys(alice):
    guessed_prefix = [_get("icmp_feedfacecafe.wrong").status_code for _ in range(40)]
    guessed_master = [_get(MASTER_KEY[:-1] + "X").status_code for _ in range(40)]

    # The lockout is engaged for the bad keys...
    assert guessed_prefix[-5:] == guessed_master[-5:] == [429] * 5
    # ...yet valid keys from the same address (as every client behind one proxy) work.
    business = _get(alice.raw_key)
    master = _get(MASTER_KEY)
    assert business.status_code == 200, business.content
    assert business.json()["kind"] == "business"
    assert master.status_code == 200, master.content
    assert master.json()["kind"] == "master"


def test_bad_secrets_for_one_prefix_are_throttled_without_touching_another_prefix(alice, bob):
    alice_prefix, bob_prefix = _prefix(alice), _prefix(bob)
    limit = throttling.FAILED_AUTH_LIMIT_PER_ADDRESS

    answers = [_get(f"icmp_{alice_prefix}.guess-{n}").status_code for n in range(limit + 5)]

    assert answers[:limit] == [401] * limit
    assert answers[limit:] == [429] * 5
    throttled = _get(f"icmp_{alice_prefix}.guess-again")
    assert _error_code(throttled) == "throttled"
    assert 0 < int(throttled["Retry-After"]) <= throttling.FAILED_AUTH_WINDOW
    # Another prefix from the same address is still judged on its own: a plain 401.
    other = _get(f"icmp_{bob_prefix}.wrong-secret")
    assert other.status_code == 401
    assert _error_code(other) == "authentication_failed"
    # And the real key behind the hammered prefix still works from that address.
    assert _get(alice.raw_key).status_code == 200


def test_a_prefix_hammered_from_many_addresses_is_throttled_everywhere(alice, monkeypatch):
    monkeypatch.setattr(throttling, "FAILED_AUTH_LIMIT_PER_PREFIX", 6)
    prefix = _prefix(alice)

    answers = [_get(f"icmp_{prefix}.guess", address=f"198.51.100.{n}").status_code for n in range(8)]

    assert answers == [401] * 6 + [429] * 2
    assert _get(f"icmp_{prefix}.guess", address="192.0.2.200").status_code == 429
    assert _get(alice.raw_key, address="192.0.2.200").status_code == 200


@pytest.mark.parametrize(
    ("proxies", "spoofed", "throttled"),
    [
        # No trusted proxy: the header is the client's own words, every request is one address.
        (0, ["192.0.2.1", "192.0.2.2"], True),
        # One proxy: its right-most entry names the client; entries left of it are ignored.
        (1, ["192.0.2.1, 198.51.100.9", "192.0.2.2, 198.51.100.9"], True),
        (1, ["198.51.100.9", "198.51.100.10"], False),
    ],
)
def test_the_failed_key_counter_trusts_x_forwarded_for_only_through_the_proxy_count(
    alice, settings, monkeypatch, proxies, spoofed, throttled
):
    settings.TRUSTED_PROXY_COUNT = proxies
    monkeypatch.setattr(throttling, "FAILED_AUTH_LIMIT_PER_ADDRESS", 2)
    prefix = _prefix(alice)
    first, second = spoofed

    assert [_get(f"icmp_{prefix}.x", forwarded=first).status_code for _ in range(2)] == [401, 401]

    assert _get(f"icmp_{prefix}.x", forwarded=second).status_code == (429 if throttled else 401)


@pytest.mark.parametrize(
    ("proxies", "first", "second", "throttled"),
    [
        (0, "192.0.2.1", "192.0.2.2", True),
        (1, "192.0.2.1, 198.51.100.9", "192.0.2.2, 198.51.100.9", True),
        (1, "192.0.2.1, 198.51.100.9", "192.0.2.1, 198.51.100.10", False),
    ],
)
def test_the_anonymous_throttle_trusts_x_forwarded_for_only_through_the_proxy_count(
    db, settings, proxies, first, second, throttled
):
    settings.TRUSTED_PROXY_COUNT = proxies
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"principal": "100/min", "anon": "1/min"},
    }
    client = APIClient(REMOTE_ADDR="10.0.0.2")  # the proxy, as gunicorn sees it

    assert client.get(SCHEMA, HTTP_X_FORWARDED_FOR=first).status_code == 200
    response = client.get(SCHEMA, HTTP_X_FORWARDED_FOR=second)

    if throttled:
        assert response.status_code == 429
        assert _error_code(response) == "throttled"
    else:
        assert response.status_code == 200
