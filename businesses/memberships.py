"""Who holds which role in a business: the rules every door that changes members goes through.

- Only an owner grants or takes the owner role (the platform too: commands, superusers).
- A business always keeps at least one owner.
- Nobody changes or removes their own membership: another owner or admin does.
- Otherwise, who may add, change and remove members is `icmp.access.ACCESS`
  (owners and admins), as everywhere else.

The back office's members inline and `membership_add` (the add_member
command) both apply changes with `membership_changes_apply`, which checks
them again under a lock on the business: two owners demoting each other at
the same moment cannot leave it without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from businesses.models import Business, Membership, Role
from icmp.access import role_may
from icmp.errors import ApplicationError

MEMBERSHIP = Membership._meta.label_lower


@dataclass(frozen=True)
class RoleChange:
    """Give `user_id` the role `role` in a business; None removes their membership."""

    user_id: int
    role: str | None


@dataclass(frozen=True)
class MembershipProblem:
    change: int | None  # the index of the refused change; None: the changes as a whole
    code: str
    message: str
    status_code: int = 400


OWN_MEMBERSHIP = "Nobody changes or removes their own membership: ask another owner or admin."
OWNER_ONLY = "Only an owner can grant or remove the owner role."
MANAGERS_ONLY = "Your role may not change the members of this business."
LAST_OWNER = "A business keeps at least one owner: make someone else owner first."


def _acts_as_platform(by: AbstractBaseUser | None) -> bool:
    # Operator commands pass no user; superusers decide for the platform.
    return by is None or bool(by.is_active and by.is_superuser)


def membership_changes_problems(
    *, business: Business, by: AbstractBaseUser | None, changes: Sequence[RoleChange]
) -> list[MembershipProblem]:
    """What is wrong with `changes` made by `by` (None: the platform), against the stored members."""
    current = dict(Membership.objects.filter(business=business).values_list("user_id", "role"))
    platform = _acts_as_platform(by)
    acting_role = None if by is None else current.get(by.pk)
    final = dict(current)
    problems: list[MembershipProblem] = []
    takes_an_owner = False
    for index, change in enumerate(changes):
        old, new = current.get(change.user_id), change.role
        if new is not None and new not in Role.values:
            problems.append(MembershipProblem(index, "invalid", f"Unknown role {new!r}."))
            continue
        if old == new:
            continue
        if by is not None and change.user_id == by.pk:
            problems.append(MembershipProblem(index, "own_membership", OWN_MEMBERSHIP, 403))
            continue
        action = "add" if old is None else "delete" if new is None else "change"
        # A non-member is refused outright: a role of None would read as a key's full rights.
        if not platform and (acting_role is None or not role_may(acting_role, MEMBERSHIP, action)):
            problems.append(MembershipProblem(index, "permission_denied", MANAGERS_ONLY, 403))
            continue
        if not platform and Role.OWNER in (old, new) and acting_role != Role.OWNER:
            problems.append(MembershipProblem(index, "owner_only", OWNER_ONLY, 403))
            continue
        takes_an_owner |= old == Role.OWNER
        if new is None:
            final.pop(change.user_id, None)
        else:
            final[change.user_id] = new
    if takes_an_owner and Role.OWNER not in final.values():
        problems.append(MembershipProblem(None, "last_owner", LAST_OWNER))
    return problems


def _refusal(problems: list[MembershipProblem]) -> ApplicationError:
    first = problems[0]
    details = {("members" if p.change is None else f"members.{p.change}"): [p.message] for p in problems}
    return ApplicationError(first.message, code=first.code, details=details, status_code=first.status_code)


def _owner_follow(*, business: Business) -> None:
    """Point `Business.owner` at the longest-standing owner: its user just lost the role."""
    owners = Membership.objects.filter(business=business, role=Role.OWNER)
    successor = owners.order_by("created_at", "pk").values_list("user_id", flat=True).first()
    if successor is not None:
        business.owner_id = successor
        business.save(update_fields=["owner", "updated_at"])


@transaction.atomic
def membership_changes_apply(
    *, business: Business, by: AbstractBaseUser | None, changes: Sequence[RoleChange]
) -> None:
    """Apply `changes` all together, or none of them (ApplicationError) when a rule refuses one."""
    if not changes:
        return
    # Serialises member changes of one business: each sees the other's result.
    business = Business.objects.select_for_update().get(pk=business.pk)
    problems = membership_changes_problems(business=business, by=by, changes=changes)
    if problems:
        raise _refusal(problems)
    for change in changes:
        if change.role is None:
            Membership.objects.filter(business=business, user_id=change.user_id).delete()
        else:
            Membership.objects.update_or_create(
                business=business, user_id=change.user_id, defaults={"role": change.role}
            )
    if any(c.user_id == business.owner_id and c.role != Role.OWNER for c in changes):
        _owner_follow(business=business)
