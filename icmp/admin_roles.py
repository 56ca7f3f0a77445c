"""Who may see what in the back office: a staff user's role in each business, and scoping.

Rights come from `businesses.Membership` roles rather than Django's permission
tables; superusers see everything. `icmp.admin_tenancy` builds the model admin
mixins on these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from businesses.models import MANAGE_ROLES, Business, Membership

_ROLES_ATTR = "_icmp_admin_roles"
# Models whose rows without a business are platform-wide defaults every tenant may read.
PLATFORM_SHARED = frozenset({"templates_app.prompttemplate"})


def member_roles(request: HttpRequest) -> dict[UUID, str]:
    """The user's role in each business they belong to, read once per request."""
    roles = getattr(request, _ROLES_ATTR, None)
    if roles is None:
        user = request.user
        roles = {}
        if user.is_active and user.is_staff:
            roles = dict(Membership.objects.filter(user=user).values_list("business_id", "role"))
        setattr(request, _ROLES_ATTR, roles)
    return roles


def is_superuser(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


def business_ids_with(request: HttpRequest, roles: Iterable[str]) -> list[UUID]:
    roles = frozenset(roles)
    return [business_id for business_id, role in member_roles(request).items() if role in roles]


def has_business_field(model: type[Model]) -> bool:
    try:
        field = model._meta.get_field("business")
    except FieldDoesNotExist:
        return False
    return field.is_relation and field.related_model is Business


def is_platform_shared(model: type[Model]) -> bool:
    return model._meta.label_lower in PLATFORM_SHARED


def scope_to(queryset: QuerySet, business_ids: Iterable[Any]) -> QuerySet:
    """Rows of `business_ids` (plus platform rows for shared models)."""
    model = queryset.model
    business_ids = list(business_ids)
    if model is Business:
        return queryset.filter(pk__in=business_ids)
    condition = Q(business__in=business_ids)
    if is_platform_shared(model):
        condition |= Q(business__isnull=True)
    return queryset.filter(condition)


def choices_for(request: HttpRequest, model: type[Model], *, write_roles: Iterable[str]) -> QuerySet | None:
    """The rows a non-superuser may pick in a foreign key to `model`; None: not tenant data."""
    if model is Business:
        # Only a business where the user may write: never create rows for another one.
        return Business.objects.filter(pk__in=business_ids_with(request, write_roles))
    if has_business_field(model):
        return scope_to(model._default_manager.all(), member_roles(request))
    if model is get_user_model():
        # Colleagues only: the user list of the whole platform is not a tenant's business.
        managed = business_ids_with(request, MANAGE_ROLES)
        return model._default_manager.filter(memberships__business__in=managed).distinct()
    return None
