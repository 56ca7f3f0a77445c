"""Proof that an access token controls the Meta id a tenant connects.

Page and Instagram account ids are public, and a phone number id is easy to
learn. Webhooks route by that id alone, so whoever connects an id receives its
customers. Before an account holds an id, one Graph call with the account's
own token must show that Meta lets that token act for the id:

- WhatsApp: `GET /{phone-number-id}?fields=id,display_phone_number,verified_name`
  answers only for a token with access to the number's WhatsApp Business Account.
- Messenger: `GET /me` with a Page access token is the Page itself.
- Instagram: with an Instagram-Login user token, `GET /me?fields=user_id,username`
  names the professional account (`user_id` is the id webhooks carry); with a
  Facebook-Login Page token, `GET /me?fields=instagram_business_account` names
  the Instagram account linked to the Page.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, replace
from typing import Any

import requests
from django.conf import settings

from .meta import TRANSIENT_CODES, MetaAdapter, _session, graph_error

logger = logging.getLogger(__name__)

TIMEOUT = (5.0, 10.0)


class OwnershipError(Exception):
    """The token does not prove control of the id; `transient` when Meta could not be asked."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient


@dataclass(frozen=True)
class OwnershipProof:
    """What Meta said about the id, for the staff to recognise the account."""

    external_id: str
    label: str
    token_sha256: str = ""  # which token proved it, so a proof is never reused for another


def _url(adapter: MetaAdapter, path: str, *, facebook: bool) -> str:
    if not facebook:
        return adapter.graph_url(path)
    # Facebook Login's Page token lives on the Facebook Graph host, whatever the adapter's host.
    return f"{settings.META_GRAPH_URL.rstrip('/')}/{settings.META_GRAPH_VERSION}/{path}"


def _get(adapter: MetaAdapter, token: str, path: str, *, facebook: bool = False) -> dict[str, Any]:
    url = _url(adapter, path, facebook=facebook)
    try:
        response = _session().get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise OwnershipError(
            f"Meta could not be reached to check the account ({type(exc).__name__}); try again.",
            transient=True,
        )
    if response.status_code >= 300:
        error = graph_error(response.status_code, response.content, response.headers)
        transient = response.status_code >= 500 or response.status_code == 429
        if isinstance(error.code, int) and error.code in TRANSIENT_CODES:
            transient = True
        logger.info(
            "ownership check refused by Graph",
            extra={"channel_kind": adapter.kind, "code": error.code, "http_status": response.status_code},
        )
        raise OwnershipError(
            f"Meta refused the access token for this id: {error.message}", transient=transient
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise OwnershipError("Meta answered without a JSON object; try again.", transient=True)
    return data


def _mismatch(kind: str, external_id: str) -> OwnershipError:
    return OwnershipError(
        f"The access token does not control the {kind} account {external_id!r}: Meta names another one."
    )


def _text(value: Any) -> str:
    return value.strip()[:120] if isinstance(value, str) else ""


def prove_whatsapp(adapter: MetaAdapter, external_id: str, token: str) -> OwnershipProof:
    data = _get(adapter, token, f"{external_id}?fields=id,display_phone_number,verified_name")
    if str(data.get("id", "")) != external_id:
        raise _mismatch("whatsapp", external_id)
    label = " ".join(
        filter(None, (_text(data.get("verified_name")), _text(data.get("display_phone_number"))))
    )
    return OwnershipProof(external_id=external_id, label=label)


def prove_messenger(adapter: MetaAdapter, external_id: str, token: str) -> OwnershipProof:
    data = _get(adapter, token, "me?fields=id,name")
    if str(data.get("id", "")) != external_id:
        raise _mismatch("messenger", external_id)
    return OwnershipProof(external_id=external_id, label=_text(data.get("name")))


def prove_instagram(adapter: MetaAdapter, external_id: str, token: str) -> OwnershipProof:
    try:
        data = _get(adapter, token, "me?fields=user_id,username")
    except OwnershipError as exc:
        if exc.transient:
            raise
        data = {}
    if str(data.get("user_id", "")) == external_id:
        return OwnershipProof(external_id=external_id, label=_text(data.get("username")))
    # A Page token (Facebook Login): the Instagram account linked to the Page.
    page = _get(adapter, token, "me?fields=id,name,instagram_business_account", facebook=True)
    linked = page.get("instagram_business_account")
    if not isinstance(linked, dict) or str(linked.get("id", "")) != external_id:
        raise _mismatch("instagram", external_id)
    return OwnershipProof(external_id=external_id, label=_text(page.get("name")))


PROVERS = {"whatsapp": prove_whatsapp, "messenger": prove_messenger, "instagram": prove_instagram}


def prove_ownership(adapter: MetaAdapter, *, external_id: str, access_token: str) -> OwnershipProof:
    """Ask Meta whether `access_token` may act for `external_id`; OwnershipError when not."""
    if not access_token:
        raise OwnershipError(f"An access token is needed to prove that this {adapter.kind} account is yours.")
    proof = PROVERS[adapter.kind](adapter, external_id, access_token)
    return replace(proof, token_sha256=token_digest(access_token))


def token_digest(access_token: str) -> str:
    return hashlib.sha256(access_token.encode()).hexdigest()
