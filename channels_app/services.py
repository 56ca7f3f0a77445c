"""Writes for channel accounts.

Secrets (access token, app secret, verify token) are encrypted at rest by the
model field (icmp.fields) and never logged: log lines carry ids only. A Meta
account holds its id only after its token proved control of it with one Graph
call (`channel_account_ownership_prove`), made before any transaction opens;
only the platform operator may skip it.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from businesses.models import Agent, Business
from channels_app.adapters import get_adapter
from channels_app.adapters.ownership import OwnershipError, OwnershipProof, prove_ownership, token_digest
from channels_app.models import ChannelAccount, ChannelKind, OwnershipCheck
from channels_app.selectors import channel_account_external_id_taken
from icmp.errors import ApplicationError
from icmp.ids import uuid7

logger = logging.getLogger(__name__)

# Meta ids are digits; API channel ids are ours or the integrator's. Neither has spaces.
EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9._:@+-]{1,64}$")
UPDATABLE_FIELDS = (
    "external_id",
    "name",
    "is_active",
    "access_token",
    "app_secret",
    "verify_token",
    "agent",
)


def _already_connected(kind: str) -> ApplicationError:
    # Same answer whoever owns the account: a tenant must not learn another's ids.
    return ApplicationError(
        f"This {kind} account is already connected.",
        code="already_connected",
        field="external_id",
    )


META_KINDS = frozenset({ChannelKind.WHATSAPP, ChannelKind.MESSENGER, ChannelKind.INSTAGRAM})


def channel_account_ownership_prove(*, kind: str, external_id: str, access_token: str) -> OwnershipProof:
    """Ask Meta whether the token controls the id. Network: call it outside any transaction."""
    try:
        return prove_ownership(get_adapter(kind), external_id=external_id, access_token=access_token)
    except OwnershipError as exc:
        if exc.transient:
            raise ApplicationError(
                exc.message, code="ownership_check_unavailable", field="access_token", status_code=503
            )
        raise ApplicationError(exc.message, code="ownership_unproven", field="access_token")


def _ownership(
    channel_account: ChannelAccount,
    *,
    proof: OwnershipProof | None,
    operator_approved: bool,
    prove_now: bool,
) -> None:
    """Prove (or take the operator's word) that the account's token controls its id, and record it.

    `prove_now=False` (a caller inside a transaction): a missing or stale proof is refused, not
    fetched, so no Graph call ever holds a transaction open.
    """
    if operator_approved:
        check, label = OwnershipCheck.OPERATOR, ""
    else:
        if (
            proof is None
            or proof.external_id != channel_account.external_id
            or proof.token_sha256 != token_digest(channel_account.access_token)
        ):
            if not prove_now:
                raise ApplicationError(
                    "Meta was not asked about this id and token before saving; submit the form again.",
                    code="ownership_unproven",
                    field="access_token",
                )
            proof = channel_account_ownership_prove(
                kind=channel_account.kind,
                external_id=channel_account.external_id,
                access_token=channel_account.access_token,
            )
        check, label = OwnershipCheck.GRAPH, proof.label
    channel_account.ownership_check = check
    channel_account.ownership_checked_at = timezone.now()
    channel_account.ownership_label = label[:255]


def _clean_external_id(*, kind: str, external_id: str | None) -> str:
    external_id = (external_id or "").strip()
    if not external_id:
        if kind == ChannelKind.API:
            return f"api_{uuid7().hex}"
        raise ApplicationError(
            f"A {kind} account needs its external_id (the id Meta sends in webhooks).",
            code="required",
            field="external_id",
        )
    if not EXTERNAL_ID_RE.match(external_id):
        raise ApplicationError(
            "external_id may only contain letters, digits and . _ : @ + - (at most 64).",
            code="invalid",
            field="external_id",
        )
    return external_id


def _clean_name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A channel account needs a name.", code="required", field="name")
    return name[:120]


def _check_agent(*, business: Business, agent: Agent | None) -> None:
    if agent is not None and agent.business_id != business.pk:
        raise ApplicationError("Unknown agent.", code="invalid", field="agent")


def _save(channel_account: ChannelAccount, *, update_fields: list[str] | None = None) -> None:
    # The pre-check answers the common case; the constraint settles a race.
    try:
        with transaction.atomic():
            channel_account.save(update_fields=update_fields)
    except IntegrityError:
        if channel_account_external_id_taken(
            kind=channel_account.kind,
            external_id=channel_account.external_id,
            exclude_id=channel_account.pk,
        ):
            raise _already_connected(channel_account.kind)
        raise


def channel_account_create(
    *,
    business: Business,
    kind: str,
    name: str,
    external_id: str | None = None,
    is_active: bool = True,
    access_token: str = "",
    app_secret: str = "",
    verify_token: str = "",
    agent: Agent | None = None,
    proof: OwnershipProof | None = None,
    operator_approved: bool = False,
    prove_now: bool = True,
) -> ChannelAccount:
    """Connect an account. A Meta account needs a token that controls its id (or the operator's word).

    Ownership comes before the "already connected" answer, so nobody learns
    which ids are connected without a token for them. Without a matching `proof`,
    Meta is asked here unless `prove_now` is False (then it is refused).
    """
    if kind not in ChannelKind.values:
        raise ApplicationError(
            f"Unknown channel kind {kind!r}; choose one of {', '.join(ChannelKind.values)}.",
            code="invalid",
            field="kind",
        )
    external_id = _clean_external_id(kind=kind, external_id=external_id)
    _check_agent(business=business, agent=agent)
    channel_account = ChannelAccount(
        business=business,
        kind=kind,
        external_id=external_id,
        name=_clean_name(name),
        is_active=is_active,
        access_token=access_token or "",
        app_secret=app_secret or "",
        verify_token=verify_token or "",
        agent=agent,
    )
    if kind in META_KINDS:
        _ownership(channel_account, proof=proof, operator_approved=operator_approved, prove_now=prove_now)
    if channel_account_external_id_taken(kind=kind, external_id=external_id):
        raise _already_connected(kind)
    _save(channel_account)
    logger.info(
        "channel account created",
        extra={"business_id": str(business.pk), "channel_account_id": str(channel_account.pk), "kind": kind},
    )
    return channel_account


def channel_account_update(
    *,
    channel_account: ChannelAccount,
    data: dict[str, Any],
    proof: OwnershipProof | None = None,
    operator_approved: bool = False,
    prove_now: bool = True,
) -> ChannelAccount:
    """Apply `data` (a subset of UPDATABLE_FIELDS, plus an unchanged `kind`).

    A new id or a new token of a Meta account is proven again before anything is saved.
    """
    if "kind" in data and data["kind"] != channel_account.kind:
        # Webhook routing, adapters and contacts' ids all depend on the kind.
        raise ApplicationError(
            "kind cannot be changed; connect a new channel account instead.",
            code="immutable",
            field="kind",
        )
    unknown = set(data) - {*UPDATABLE_FIELDS, "kind"}
    if unknown:
        raise ApplicationError(
            f"Cannot update {', '.join(sorted(unknown))}.", code="invalid", field=sorted(unknown)[0]
        )
    changed: list[str] = []
    if "external_id" in data:
        external_id = _clean_external_id(kind=channel_account.kind, external_id=data["external_id"])
        if external_id != channel_account.external_id:
            channel_account.external_id = external_id
            changed.append("external_id")
    if "name" in data:
        channel_account.name = _clean_name(data["name"])
        changed.append("name")
    if "is_active" in data:
        channel_account.is_active = bool(data["is_active"])
        changed.append("is_active")
    if "agent" in data:
        _check_agent(business=channel_account.business, agent=data["agent"])
        channel_account.agent = data["agent"]
        changed.append("agent")
    for secret in ChannelAccount.SECRET_FIELDS:
        if secret in data:
            setattr(channel_account, secret, data[secret] or "")
            changed.append(secret)
    if data.get("access_token"):
        # A fresh token is the fix for a rejected one (Graph error 190).
        channel_account.needs_reauth = False
        changed.append("needs_reauth")
    new_id = "external_id" in changed
    new_token = "access_token" in changed and bool(channel_account.access_token)
    if channel_account.kind in META_KINDS and (new_id or new_token):
        _ownership(channel_account, proof=proof, operator_approved=operator_approved, prove_now=prove_now)
        changed += ["ownership_check", "ownership_checked_at", "ownership_label"]
    if new_id and channel_account_external_id_taken(
        kind=channel_account.kind, external_id=channel_account.external_id, exclude_id=channel_account.pk
    ):
        raise _already_connected(channel_account.kind)
    if changed:
        _save(channel_account, update_fields=[*changed, "updated_at"])
        logger.info(
            "channel account updated",
            extra={
                "business_id": str(channel_account.business_id),
                "channel_account_id": str(channel_account.pk),
                # Field names only: the values may be secrets.
                "fields": sorted(changed),
            },
        )
    return channel_account


@transaction.atomic
def channel_account_delete(*, channel_account: ChannelAccount) -> None:
    """Delete an account that has no customers yet.

    Deleting one with contacts would cascade to their conversations and
    messages; such an account is deactivated (`is_active=false`) instead.
    """
    if channel_account.contacts.exists() or channel_account.conversations.exists():
        raise ApplicationError(
            "This channel account has conversations; deactivate it (is_active=false) instead of deleting.",
            code="in_use",
        )
    logger.info(
        "channel account deleted",
        extra={
            "business_id": str(channel_account.business_id),
            "channel_account_id": str(channel_account.pk),
        },
    )
    channel_account.delete()
