"""Reads for businesses and memberships."""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from jsonschema import Draft202012Validator

from businesses.models import Business, Membership
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
    return (
        Membership.objects.filter(user=user, business=business).values_list("role", flat=True).first()
    )


def businesses_for_owner_email(*, email: str) -> QuerySet[Business]:
    return Business.objects.filter(owner__email__iexact=email.strip()).select_related("owner")
