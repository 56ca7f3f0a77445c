"""Property-based: random shapes inside a valid, signed envelope never make a 500 or a half write."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels_app.models import WebhookEvent, WebhookEventStatus
from conversations import inbound
from conversations.models import Contact, Conversation, Message
from tests.channels import fixture, fixture_names
from tests.channels.webhook_helpers import (
    ANA,
    IGID,
    PAGE,
    PNID,
    PSID,
    last_event,
    meta_accounts,
    post_bytes,
)
from tests.hostile_input import deeply_nested, with_lone_surrogate

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("meta_app")]

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


CHANNELS = ("whatsapp", "messenger", "instagram")
VOCAB = sorted(set().union(*(_keys(fixture(c, n)) for c in CHANNELS for n in fixture_names(c))))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(
        [
            PNID,
            PAGE,
            IGID,
            ANA,
            PSID,
            "text",
            "image",
            "failed",
            "read",
            "1767225600",
            "1767228000312",
            # Timestamps at and past the ends of the calendar (seconds and milliseconds).
            "-62135596800",
            "253402300800",
            "253402300800000",
            "1e308",
            str(2**64),
            "x" * 300,
        ]
    )
)
KEYS = st.sampled_from(VOCAB) | st.text(max_size=3)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


@st.composite
def mutated_fixture(draw: st.DrawFn, channel: str) -> Any:
    """A real fixture with one to three nodes replaced by random JSON (wrong types) or deleted."""
    document = copy.deepcopy(fixture(channel, draw(st.sampled_from(fixture_names(channel)))))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.integers(0, 5)) == 0:
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return document


def _item(required: dict[str, Any]) -> st.SearchStrategy[Any]:
    base = st.fixed_dictionaries({k: st.just(v) | JSON for k, v in required.items()})
    return st.builds(lambda b, extra: {**extra, **b}, base, st.dictionaries(KEYS, JSON, max_size=3)) | JSON


WHATSAPP = st.builds(
    lambda messages, statuses, errors: {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": PNID},
                            "contacts": [{"wa_id": ANA, "profile": {"name": "Ana"}}],
                            "messages": messages,
                            "statuses": statuses,
                            "errors": errors,
                        },
                    }
                ],
            }
        ],
    },
    st.lists(_item({"from": ANA, "id": "wamid.F", "timestamp": "1767225600", "type": "text"}), max_size=3),
    st.lists(_item({"id": "wamid.S", "status": "failed", "timestamp": "1767225600"}), max_size=2),
    st.lists(JSON, max_size=1),
)


def _meta_envelope(obj: str, account: str) -> st.SearchStrategy[Any]:
    event = _item({"sender": {"id": PSID}, "recipient": {"id": account}, "timestamp": 1767228000312})
    return st.builds(
        lambda key, events: {"object": obj, "entry": [{"id": account, key: events}]},
        st.sampled_from(["messaging", "standby"]),
        st.lists(event, max_size=3),
    )


def _fixtures(channel: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(fixture_names(channel)).map(lambda name: fixture(channel, name))


STRATEGIES = {
    "whatsapp": WHATSAPP | mutated_fixture("whatsapp") | _fixtures("whatsapp") | JSON,
    "messenger": _meta_envelope("page", PAGE) | mutated_fixture("messenger") | _fixtures("messenger") | JSON,
    "instagram": _meta_envelope("instagram", IGID)
    | mutated_fixture("instagram")
    | _fixtures("instagram")
    | JSON,
}


def salted(payload: Any, salt: str) -> bytes:
    """The JSON body with message ids made unique per salt, so most examples store something new."""
    body = json.dumps(payload)
    for prefix in ('"wamid.', '"m_', '"aWdf'):
        body = body.replace(prefix, f"{prefix}{salt}-")
    return body.encode()


# Mostly fresh ids, sometimes a redelivery of an earlier example.
SALTS = st.uuids().map(lambda u: u.hex[:12]) | st.sampled_from(["0", "1"])


def snapshot() -> tuple:
    """Every row the ingest may write, with the fields it may change."""
    return (
        tuple(Contact.objects.order_by("pk").values_list("pk", "name")),
        tuple(Conversation.objects.order_by("pk").values_list("pk", "ai_mode", "last_inbound_at")),
        tuple(Message.objects.order_by("pk").values_list("pk", "status", "text", "error_code")),
    )


def settled(event) -> bool:
    """Processed or unrouted; or failed on purpose: a message naming no sender is kept for replay."""
    if event.status == WebhookEventStatus.FAILED:
        return "names no sender" in event.error
    return event.status in (WebhookEventStatus.PROCESSED, WebhookEventStatus.UNROUTED)


@pytest.mark.parametrize("channel", CHANNELS)
def test_random_shapes_in_a_signed_envelope_are_answered_200_and_stored_or_failed_cleanly(
    alice, channel, enqueued
):
    # `enqueued`: the stored messages' turns are recorded, not run (this is about the door and storing).
    meta_accounts(alice.business)
    client = Client()

    @FUZZ
    @given(payload=STRATEGIES[channel], salt=SALTS)
    def check(payload: Any, salt: str) -> None:
        body = salted(payload, salt)
        before = snapshot()
        response = post_bytes(channel, body, client=client)
        assert response.status_code == 200, response.content
        event = last_event()
        assert event.body.encode() == body
        assert settled(event), event.error
        if event.status == WebhookEventStatus.UNROUTED:
            assert snapshot() == before

    check()


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_failure_anywhere_in_a_random_batch_rolls_back_every_effect(alice, channel, monkeypatch, enqueued):
    meta_accounts(alice.business)
    client = Client()
    real_item = inbound.inbound_item_apply
    real_status = inbound.status_update_apply
    calls = {"n": 0, "fail_at": -1}

    def counted(real):
        def wrapper(**kwargs):
            result = real(**kwargs)  # the effects happen first…
            calls["n"] += 1
            if calls["n"] == calls["fail_at"]:
                raise RuntimeError("injected failure")  # …then the batch fails
            return result

        return wrapper

    monkeypatch.setattr(inbound.batches, "inbound_item_apply", counted(real_item))
    monkeypatch.setattr(inbound.batches, "status_update_apply", counted(real_status))

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(payload=STRATEGIES[channel], salt=SALTS, fail_at=st.integers(1, 3))
    def check(payload: Any, salt: str, fail_at: int) -> None:
        calls.update(n=0, fail_at=fail_at)
        before = snapshot()
        response = post_bytes(channel, salted(payload, salt), client=client)
        assert response.status_code == 200
        event = last_event()
        if calls["n"] >= fail_at:
            assert event.status == WebhookEventStatus.FAILED
            assert event.error.splitlines()[0] == "RuntimeError: injected failure"
            assert snapshot() == before
        elif event.status == WebhookEventStatus.FAILED:
            # A message naming no sender fails its event on purpose (kept for replay_webhooks).
            assert "names no sender" in event.error, event.error
        else:
            assert event.status in (WebhookEventStatus.PROCESSED, WebhookEventStatus.UNROUTED)

    check()


@pytest.mark.parametrize("channel", CHANNELS)
def test_nesting_too_deep_anywhere_in_a_signed_envelope_is_400_and_stores_nothing(alice, channel):
    meta_accounts(alice.business)
    client = Client()

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=deeply_nested(STRATEGIES[channel]))
    def check(body: bytes) -> None:
        response = post_bytes(channel, body, client=client)
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "parse_error"
        assert not WebhookEvent.objects.exists()

    check()


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_lone_surrogate_anywhere_in_a_signed_envelope_is_kept_and_cleaned(alice, channel):
    """Meta can relay a user's broken emoji: the event is stored and applied, never a 400 or 500."""
    meta_accounts(alice.business)
    client = Client()

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=with_lone_surrogate(STRATEGIES[channel]), salt=SALTS)
    def check(body: bytes, salt: str) -> None:
        body = salted(json.loads(body), salt)
        response = post_bytes(channel, body, client=client)
        assert response.status_code == 200, response.content
        event = last_event()
        assert event.body.encode() == body
        assert settled(event), event.error

    check()
