"""Writes for businesses, members, agents, API keys and AI settings."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from businesses.memberships import RoleChange, membership_changes_apply
from businesses.models import Agent, AIControlSettings, APIKey, Business, Membership, Role
from businesses.selectors import business_config_validator
from icmp.errors import ApplicationError
from icmp.jsonschemas import instance_errors

KEY_PREFIX = "icmp_"
# last_used_at is written at most this often per key: no write per request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def api_key_create(
    *,
    business: Business,
    name: str,
    expires_at: datetime | None = None,
    created_by: AbstractBaseUser | None = None,
) -> tuple[APIKey, str]:
    """Create a key and return it with the full secret, which is never stored."""
    name = (name or "").strip()
    if not name:
        raise ApplicationError("An API key needs a name.", code="invalid", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError("expires_at must be in the future.", code="invalid", field="expires_at")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    api_key = APIKey.objects.create(
        business=business,
        name=name[:100],
        prefix=prefix,
        hashed_key=_hash_secret(secret),
        expires_at=expires_at,
        created_by=created_by,
    )
    return api_key, f"{KEY_PREFIX}{prefix}.{secret}"


def api_key_authenticate(*, raw_key: str) -> APIKey | None:
    """The usable key matching `raw_key`, or None. Updates last_used_at lazily."""
    if not raw_key.startswith(KEY_PREFIX) or "." not in raw_key:
        return None
    prefix, _, secret = raw_key[len(KEY_PREFIX) :].partition(".")
    if not prefix or not secret or len(prefix) > 16:
        return None
    api_key = (
        APIKey.objects.select_related("business").filter(prefix=prefix, business__is_active=True).first()
    )
    if api_key is None:
        # Same work as a match, so timing does not tell which prefixes exist.
        hmac.compare_digest(_hash_secret(secret), "0" * 64)
        return None
    if not hmac.compare_digest(_hash_secret(secret), api_key.hashed_key):
        return None
    if not api_key.is_usable:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def api_key_revoke(*, api_key: APIKey) -> APIKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at", "updated_at"])
    return api_key


def business_config_validate(*, config: Any) -> None:
    errors = instance_errors(business_config_validator(), config)
    if errors:
        raise ApplicationError(
            "The business config does not match its schema.",
            code="invalid_config",
            field="config",
            details={"config": errors},
        )


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "business"
    slug, n = base, 1
    while Business.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def business_create(
    *, name: str, owner_email: str, config: dict[str, Any] | None = None, slug: str | None = None
) -> tuple[Business, str]:
    """Create a business, its owner (when new), settings, default agent and first API key.

    Returns the business and the first API key in clear text (shown once).
    """
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A business needs a name.", code="invalid", field="name")
    owner_email = (owner_email or "").strip().lower()
    if "@" not in owner_email:
        raise ApplicationError("owner_email must be an email address.", code="invalid", field="owner_email")
    config = config or {}
    business_config_validate(config=config)
    if slug and Business.objects.filter(slug=slug).exists():
        raise ApplicationError(f"The slug {slug!r} is taken.", code="conflict", field="slug")

    User = get_user_model()
    owner = User.objects.filter(email__iexact=owner_email).order_by("id").first()
    if owner is None:
        owner = User(username=owner_email, email=owner_email, is_staff=True)
        owner.set_unusable_password()
        owner.save()
    try:
        with transaction.atomic():
            business = Business.objects.create(
                name=name[:200], slug=slug or _unique_slug(name), owner=owner, config=config
            )
    except IntegrityError:
        # Two creates raced for the same slug.
        raise ApplicationError("The slug is taken; try again.", code="conflict", field="slug")
    Membership.objects.create(business=business, user=owner, role=Role.OWNER)
    AIControlSettings.objects.create(business=business)
    Agent.objects.create(business=business, name="Assistant", is_default=True)
    _, raw_key = api_key_create(business=business, name="Initial key")
    business_default_stage_ensure(business=business)
    return business, raw_key


def business_update(*, business: Business, data: dict[str, Any]) -> Business:
    fields = []
    if "name" in data:
        name = (data["name"] or "").strip()
        if not name:
            raise ApplicationError("A business needs a name.", code="invalid", field="name")
        business.name = name[:200]
        fields.append("name")
    if "config" in data:
        business_config_validate(config=data["config"])
        business.config = data["config"]
        fields.append("config")
    if fields:
        business.save(update_fields=[*fields, "updated_at"])
    return business


def business_default_stage_ensure(*, business: Business) -> bool:
    """Give a business with no stages a default initial stage. True if one was made."""
    from stages.models import Stage

    if Stage.objects.filter(business=business).exists():
        return False
    Stage.objects.create(
        business=business,
        key="general",
        name="General",
        description="Any conversation: answer questions and help the customer.",
        order=0,
        is_initial=True,
    )
    return True


@transaction.atomic
def membership_add(
    *, business: Business, email: str, role: str, password: str | None = None
) -> tuple[Membership, bool]:
    """Give `email` a staff login on `business` with `role`. Returns (membership, user_created).

    The platform asks (the add_member command): `businesses.memberships` still
    keeps the business an owner.
    """
    if role not in Role.values:
        raise ApplicationError(
            f"Unknown role {role!r}; choose one of {', '.join(Role.values)}.", code="invalid", field="role"
        )
    email = (email or "").strip().lower()
    if "@" not in email:
        raise ApplicationError("email must be an email address.", code="invalid", field="email")
    User = get_user_model()
    user = User.objects.filter(email__iexact=email).order_by("id").first()
    created = user is None
    if user is None:
        user = User(username=email, email=email)
    user.is_staff = True
    if password:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()
    membership_changes_apply(business=business, by=None, changes=[RoleChange(user_id=user.pk, role=role)])
    return Membership.objects.get(business=business, user=user), created


AGENT_FIELDS = ("name", "persona", "instructions", "model", "temperature", "max_tokens", "is_default")


def _agent_name_check(*, business: Business, name: str, exclude_id: Any = None) -> str:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("An agent needs a name.", code="invalid", field="name")
    taken = Agent.objects.filter(business=business, name=name)
    if exclude_id is not None:
        taken = taken.exclude(pk=exclude_id)
    if taken.exists():
        raise ApplicationError(
            f"This business already has an agent named {name!r}.", code="duplicate", field="name"
        )
    return name


def _agent_save(*, agent: Agent, update_fields: list[str] | None = None) -> None:
    """Save, turning a lost race on a unique constraint into a 400 instead of a 500."""
    try:
        with transaction.atomic():
            agent.save(update_fields=update_fields)
    except IntegrityError:
        raise ApplicationError(
            "Another agent with this name (or another default agent) was saved at the same time.",
            code="conflict",
            field="name",
        )


@transaction.atomic
def agent_create(
    *,
    business: Business,
    name: str,
    persona: str = "",
    instructions: str = "",
    model: str = "",
    temperature: Decimal | float = Decimal("0.3"),
    max_tokens: int = 500,
    is_default: bool = False,
) -> Agent:
    """Create an agent. The first agent of a business (or one marked default) becomes the default.

    Making an agent the default unsets the previous default in the same transaction.
    """
    # Serialises default changes of one business (a no-op on SQLite).
    list(Business.objects.select_for_update().filter(pk=business.pk).values_list("pk", flat=True))
    name = _agent_name_check(business=business, name=name)
    has_default = Agent.objects.filter(business=business, is_default=True).exists()
    if is_default and has_default:
        Agent.objects.filter(business=business, is_default=True).update(
            is_default=False, updated_at=timezone.now()
        )
    agent = Agent(
        business=business,
        name=name,
        persona=persona,
        instructions=instructions,
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,
        is_default=is_default or not has_default,
    )
    _agent_save(agent=agent)
    return agent


@transaction.atomic
def agent_update(*, agent: Agent, data: dict[str, Any]) -> Agent:
    """Change some of AGENT_FIELDS. The default agent can only be replaced, never just unset."""
    unknown = set(data) - set(AGENT_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown agent fields: {', '.join(sorted(unknown))}.", code="invalid")
    business = agent.business
    list(Business.objects.select_for_update().filter(pk=business.pk).values_list("pk", flat=True))
    if "name" in data:
        data = {**data, "name": _agent_name_check(business=business, name=data["name"], exclude_id=agent.pk)}
    if "is_default" in data:
        if agent.is_default and not data["is_default"]:
            raise ApplicationError(
                "A business always has a default agent: make another agent the default instead.",
                code="default_agent_required",
                field="is_default",
            )
        if data["is_default"] and not agent.is_default:
            Agent.objects.filter(business=business, is_default=True).update(
                is_default=False, updated_at=timezone.now()
            )
    fields = [name for name in AGENT_FIELDS if name in data]
    for name in fields:
        setattr(agent, name, data[name])
    if fields:
        _agent_save(agent=agent, update_fields=[*fields, "updated_at"])
    return agent


def agent_delete(*, agent: Agent) -> None:
    """Delete an agent. The default agent cannot be deleted (conversations fall back to it)."""
    if agent.is_default:
        raise ApplicationError(
            "The default agent cannot be deleted: make another agent the default first.",
            code="default_agent_protected",
        )
    agent.delete()


AI_SETTINGS_FIELDS = (
    "auto_reply_enabled",
    "burst_window_seconds",
    "fallback_text",
    "history_token_budget",
    "monthly_token_budget",
    "max_turns_per_conversation",
    "whatsapp_window_template",
    "whatsapp_window_template_language",
)
MAX_BURST_WINDOW_SECONDS = 300


def ai_settings_ensure(*, business: Business) -> AIControlSettings:
    """The business's AI control settings, created with defaults when missing."""
    ai_settings, _ = AIControlSettings.objects.get_or_create(business=business)
    return ai_settings


def ai_settings_update(*, ai_settings: AIControlSettings, data: dict[str, Any]) -> AIControlSettings:
    unknown = set(data) - set(AI_SETTINGS_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown AI settings: {', '.join(sorted(unknown))}.", code="invalid")
    burst = data.get("burst_window_seconds")
    if burst is not None and not 0 <= burst <= MAX_BURST_WINDOW_SECONDS:
        raise ApplicationError(
            f"burst_window_seconds must be between 0 and {MAX_BURST_WINDOW_SECONDS}.",
            code="invalid",
            field="burst_window_seconds",
        )
    fields = [name for name in AI_SETTINGS_FIELDS if name in data]
    for name in fields:
        setattr(ai_settings, name, data[name])
    if fields:
        ai_settings.save(update_fields=[*fields, "updated_at"])
    return ai_settings
