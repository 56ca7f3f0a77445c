"""Signing and posting webhook bodies the way Meta does: exact bytes, real URLs."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.test import Client, TestCase

from channels_app.models import ChannelAccount, ChannelKind, WebhookEvent
from tests.channels import fixture_bytes

APP_SECRET = "test-app-secret-0123456789abcdef"
VERIFY_TOKEN = "test-verify-token"
APP_ID = "1517776481860111"  # the app id in messenger/echo_ours.json

# Routing ids the fixtures use.
PNID = "106540352242922"
PNID_2 = "106540352242999"  # the second number in whatsapp/batched.json
PAGE = "102938475610293"
IGID = "17841400000000000"
ANA = "5511987654321"
PSID = "7392015648120394"
IGSID = "6841100000000000"
ROUTING = {"whatsapp": PNID, "messenger": PAGE, "instagram": IGID}


def sign(body: bytes, secret: str = APP_SECRET, algorithm: str = "sha256") -> str:
    return f"{algorithm}=" + hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def url(channel: str, account: ChannelAccount | None = None) -> str:
    return f"/webhooks/{channel}/{account.pk}/" if account is not None else f"/webhooks/{channel}/"


def post_bytes(
    channel: str,
    body: bytes,
    *,
    secret: str = APP_SECRET,
    signature: str | None = None,
    account: ChannelAccount | None = None,
    client: Client | None = None,
    headers: dict[str, str] | None = None,
):
    """POST `body` exactly as given, signed with `secret` unless `signature`/`headers` say otherwise.

    The door stores the event and hands it on after commit. In production its
    INSERT commits at once; inside a test's transaction, the hand-on runs here,
    when the POST returns, as it would have after that commit.
    """
    if headers is None:
        headers = {"X-Hub-Signature-256": signature if signature is not None else sign(body, secret)}
    with after_commit_here():
        return (client or Client()).post(
            url(channel, account), data=body, content_type="application/json", headers=headers
        )


@contextmanager
def after_commit_here() -> Iterator[None]:
    """Run what the block hands on after commit, once: an enclosing capture must not run it again."""
    start = len(connection.run_on_commit)
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            yield
    finally:
        del connection.run_on_commit[start:]


def post_fixture(channel: str, name: str, **kwargs: Any):
    return post_bytes(channel, fixture_bytes(channel, name), **kwargs)


def post_json(channel: str, payload: Any, **kwargs: Any):
    return post_bytes(channel, json.dumps(payload).encode(), **kwargs)


def last_event() -> WebhookEvent:
    return WebhookEvent.objects.order_by("-created_at", "-id").first()


def make_account(business, kind: str, external_id: str, **fields: Any) -> ChannelAccount:
    return ChannelAccount.objects.create(
        business=business,
        kind=kind,
        external_id=external_id,
        name=f"{kind} {external_id}",
        access_token=f"token-{external_id}",
        **fields,
    )


def meta_accounts(business) -> dict[str, ChannelAccount]:
    """One account per Meta channel, routed by the fixtures' ids."""
    return {
        "whatsapp": make_account(business, ChannelKind.WHATSAPP, PNID),
        "messenger": make_account(business, ChannelKind.MESSENGER, PAGE),
        "instagram": make_account(business, ChannelKind.INSTAGRAM, IGID),
    }
