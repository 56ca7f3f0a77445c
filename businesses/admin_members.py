"""The members inline of the Business page.

Its rows are not saved by the formset: each new, changed or deleted row
becomes a `RoleChange` that `businesses.memberships` checks (a refusal is an
error above the inline, nothing of the post is saved) and applies, the same
rules the add_member command goes through.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest

from businesses.memberships import (
    MembershipProblem,
    RoleChange,
    membership_changes_apply,
    membership_changes_problems,
)
from businesses.models import Membership
from icmp.admin_inlines import TenantInlineMixin


class MembershipFormSet(BaseInlineFormSet):
    # Who posts; set per request by MembershipInline.get_formset.
    by: AbstractBaseUser | None = None

    def role_changes(self) -> list[tuple[ModelForm, RoleChange]]:
        """The rows the post adds, changes or deletes, as role changes."""
        changes = []
        for form in self.forms:
            deleted = self.can_delete and self._should_delete_form(form)
            if form.instance._state.adding:
                user = form.cleaned_data.get("user")
                if not deleted and form.has_changed() and user is not None:
                    changes.append((form, RoleChange(user_id=user.pk, role=form.cleaned_data.get("role"))))
            elif deleted:
                changes.append((form, RoleChange(user_id=form.instance.user_id, role=None)))
            elif "role" in form.changed_data:
                role = form.cleaned_data["role"]
                changes.append((form, RoleChange(user_id=form.instance.user_id, role=role)))
        return changes

    def _problem_text(self, problem: MembershipProblem, changes: list[tuple[ModelForm, RoleChange]]) -> str:
        if problem.change is None:
            return problem.message
        form, _ = changes[problem.change]
        user = form.cleaned_data.get("user") or form.instance.user
        return f"{user}: {problem.message}"

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        changes = self.role_changes()
        problems = membership_changes_problems(
            business=self.instance, by=self.by, changes=[change for _, change in changes]
        )
        if problems:
            raise ValidationError([self._problem_text(problem, changes) for problem in problems])


class MembershipInline(TenantInlineMixin, admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
    extra = 0
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)

    def get_formset(self, request: HttpRequest, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        return type(formset.__name__, (formset,), {"by": request.user})


def membership_formset_save(formset: MembershipFormSet, *, by: AbstractBaseUser) -> None:
    """Apply the rows through the rules, and list them as formset.save() would for the admin's log."""
    changes = formset.role_changes()
    business = formset.instance
    membership_changes_apply(business=business, by=by, changes=[change for _, change in changes])
    formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    for form, change in changes:
        if change.role is None:
            formset.deleted_objects.append(form.instance)
        elif form.instance._state.adding:
            formset.new_objects.append(Membership.objects.get(business=business, user_id=change.user_id))
        else:
            formset.changed_objects.append((form.instance, ["role"]))
