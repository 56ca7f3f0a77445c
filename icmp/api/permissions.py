"""Who may do what. Object scoping happens in each view's queryset."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from businesses.models import EDIT_ROLES, MANAGE_ROLES, Role
from icmp.access import ALL_ROLES, Action, access_for, roles_allow
from icmp.api.principal import Principal, PrincipalKind


def principal_of(request: Request) -> Principal | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, Principal) else None


# What a view's standard actions do, in the words of icmp.access.
_VIEWSET_ACTIONS: dict[str, Action] = {
    "list": "view",
    "retrieve": "view",
    "create": "add",
    "update": "change",
    "partial_update": "change",
    "destroy": "delete",
}
_METHOD_ACTIONS: dict[str, Action] = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


def table_action(request: Request, view) -> Action:
    """The `icmp.access` action a request performs on its view's model.

    A view names its own extra actions in `access_actions` (by action name for
    viewsets, by lower-case method for plain views); reading is always "view".
    """
    if request.method in SAFE_METHODS:
        return "view"
    declared = getattr(view, "access_actions", {})
    name = getattr(view, "action", None) or request.method.lower()
    if name in declared:
        return declared[name]
    return _VIEWSET_ACTIONS.get(name) or _METHOD_ACTIONS.get(request.method, "change")


class IsBusinessPrincipal(BasePermission):
    """A business key, or a staff member acting on a business they belong to.

    What a member's role may do to a view's `access_model` ("app.model") is
    that model's row of `icmp.access.ACCESS`, the table the back office obeys
    too. A view without one lets every role read and editors and up write.
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
        method = request.method.lower()
        if method not in view.http_method_names or getattr(view, method, None) is None:
            # A method the route does not offer: the view answers 405, whoever asks.
            return True
        label = getattr(view, "access_model", None)
        action = table_action(request, view)
        if label is not None:
            roles = access_for(label).roles(action)
        else:
            roles = ALL_ROLES if action == "view" else EDIT_ROLES
        allowed = roles_allow(principal.role, roles)
        if not allowed:
            self.message = self._refusal(principal.role, roles)
        return allowed

    @staticmethod
    def _refusal(role: str | None, roles: frozenset[str]) -> str:
        if role == Role.VIEWER:
            return "Your role on this business is read-only."
        if roles and roles <= MANAGE_ROLES:
            return "Only owners and admins may change this."
        return "Your role on this business may not do this."


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
