"""Who may do what. Object scoping happens in each view's queryset."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from icmp.api.principal import Principal, PrincipalKind


def principal_of(request: Request) -> Principal | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, Principal) else None


class IsBusinessPrincipal(BasePermission):
    """A business key, or a staff member acting on a business they belong to.

    Viewers (staff sessions with the viewer role) may only read.
    """

    message = "This route needs a business API key or a staff session for one business."

    def has_permission(self, request: Request, view) -> bool:
        principal = principal_of(request)
        if principal is None or principal.kind != PrincipalKind.BUSINESS:
            return False
        if principal.business is None:
            self.message = (
                "Choose the business with the X-Business-Id header; "
                "your login is not a member of exactly one business."
            )
            return False
        if request.method not in SAFE_METHODS and not principal.can_edit:
            self.message = "Your role on this business is read-only."
            return False
        return True


class CanManageBusiness(IsBusinessPrincipal):
    """Business keys, owners and admins: API keys, channel secrets, business settings."""

    def has_permission(self, request: Request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        principal = principal_of(request)
        if request.method not in SAFE_METHODS and not principal.can_manage:
            self.message = "Only owners and admins may change this."
            return False
        return True


class IsMaster(BasePermission):
    message = "This route needs the master API key."

    def has_permission(self, request: Request, view) -> bool:
        principal = principal_of(request)
        return principal is not None and principal.kind == PrincipalKind.MASTER


class IsPlatform(BasePermission):
    """Master key for everything; the internal key for reads."""

    message = "This route needs a platform API key."

    def has_permission(self, request: Request, view) -> bool:
        principal = principal_of(request)
        if principal is None:
            return False
        if principal.kind == PrincipalKind.MASTER:
            return True
        return principal.kind == PrincipalKind.INTERNAL and request.method in SAFE_METHODS


class IsAnyPrincipal(BasePermission):
    def has_permission(self, request: Request, view) -> bool:
        return principal_of(request) is not None
