"""Who is calling the API: a business key, a platform key, or a staff member."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from businesses.models import APIKey, Business


class PrincipalKind(StrEnum):
    BUSINESS = "business"
    MASTER = "master"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Principal:
    """Set as `request.auth` by the authentication classes.

    `business` is the tenant every query is scoped to (None for platform keys);
    `role` is the member's role for a staff session, or None for API keys, which
    act with full rights on their own business.
    """

    kind: PrincipalKind
    business: Business | None = None
    api_key: APIKey | None = None
    user_id: int | None = None
    role: str | None = None

    @property
    def throttle_ident(self) -> str:
        if self.api_key is not None:
            return f"key:{self.api_key.prefix}"
        if self.user_id is not None:
            return f"user:{self.user_id}"
        return f"platform:{self.kind}"
