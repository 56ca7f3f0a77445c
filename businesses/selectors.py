"""Reads for businesses, memberships, agents and API keys."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from jsonschema import Draft202012Validator

from businesses.models import Agent, APIKey, Business, Membership, Role
from icmp.jsonschemas import validator_for_file

CONFIG_SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "business_config.schema.json"


def business_config_validator() -> Draft202012Validator:
    return validator_for_file(str(CONFIG_SCHEMA_PATH))


def business_ids_for_user(*, user: AbstractBaseUser) -> list:
    """Ids of the businesses a staff user may see (all of them for a superuser)."""
    if not user.is_active or not user.is_staff:
        return []
    if user.is_superuser:
        return list(Business.objects.values_list("id", flat=True))
    return list(Membership.objects.filter(user=user).values_list("business_id", flat=True))


def membership_role_get(*, user: AbstractBaseUser, business: Business) -> str | None:
    return Membership.objects.filter(user=user, business=business).values_list("role", flat=True).first()


def business_list() -> QuerySet[Business]:
    """Every business, for platform keys."""
    return Business.objects.select_related("owner")


def businesses_for_owner_email(*, email: str) -> QuerySet[Business]:
    return business_list().filter(owner__email__iexact=email.strip())


def business_owner_verify(*, business: Business, email: str) -> bool:
    """Whether `email` is the business's owner (the owner account or an owner member)."""
    email = (email or "").strip()
    if not email:
        return False
    return Business.objects.filter(
        Q(owner__email__iexact=email)
        | Q(memberships__role=Role.OWNER, memberships__user__email__iexact=email),
        pk=business.pk,
    ).exists()


def agent_list(*, business: Business) -> QuerySet[Agent]:
    return Agent.objects.filter(business=business)


def api_key_list(*, business: Business) -> QuerySet[APIKey]:
    return APIKey.objects.filter(business=business)
