"""Tenant scoping for admin inlines: their rows belong to the parent's business.

The inline counterpart of `icmp.admin_tenancy.TenantAdminMixin`; rights come from
the inline model's row of `icmp.access.ACCESS`, the table the API obeys too.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.http import HttpRequest

from businesses.models import Business
from icmp.access import Access, Action, access_for
from icmp.admin_roles import choices_for, is_superuser, member_roles


class TenantInlineMixin:
    """An inline whose rows belong to the parent's business; rights follow the parent.

    Its row of `icmp.access.ACCESS` also says which fields a new and an existing row offer,
    to superusers too: the others (whose membership it is) are shown, never changed.
    """

    @property
    def access(self) -> Access:
        return access_for(self.model._meta.label_lower)

    def _parent_business_id(self, obj: Model | None) -> Any:
        if obj is None:
            return None
        return obj.pk if isinstance(obj, Business) else getattr(obj, "business_id", None)

    def _may(self, request: HttpRequest, action: Action, obj: Model | None) -> bool:
        if is_superuser(request):
            return action in self.access.platform
        return member_roles(request).get(self._parent_business_id(obj)) in self.access.roles(action)

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if is_superuser(request):
            return True
        if obj is None:
            return bool(member_roles(request))
        return self._may(request, "view", obj)

    def has_add_permission(self, request: HttpRequest, obj: Model | None) -> bool:
        return self._may(request, "add", obj)

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may(request, "change", obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self._may(request, "delete", obj)

    def get_formset(self, request: HttpRequest, obj: Model | None = None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        access = self.access
        data_fields = {f.name for f in self.model._meta.concrete_fields if not f.primary_key}

        class TableFormSet(formset):
            def add_fields(self, form, index):
                super().add_fields(form, index)
                allowed = access.add_fields if form.instance._state.adding else access.change_fields
                for name, field in form.fields.items():
                    if name in data_fields and name != self.fk.name and name not in allowed:
                        field.disabled = True

        return TableFormSet

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not is_superuser(request) and "queryset" not in kwargs:
            queryset = choices_for(request, db_field.related_model, write_roles=self.access.writers)
            if queryset is not None:
                kwargs["queryset"] = queryset
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
