"""Tenant scoping for the Django admin, the back office of every business.

Staff who are not superusers see and touch only the businesses they are
members of (`businesses.Membership`), with rights from their role rather than
Django's permission tables: what each role may do to each model, and to which
fields, is `icmp.access.ACCESS`, the table the API obeys too. Rows of another
tenant are absent from every queryset, so their URLs answer 404. Superusers
see everything.

Every model admin uses `TenantAdminMixin` (a test walks `admin.site._registry`
to keep it that way), and every inline `TenantInlineMixin` (icmp.admin_inlines).
Message-sized tables add `LargeTableMixin` so a list page never counts the
whole table.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.utils.html import format_html
from simple_history.admin import SimpleHistoryAdmin

from businesses.models import Business
from icmp.access import Access, Action, access_for
from icmp.admin_paginator import BoundedCountPaginator
from icmp.admin_roles import (
    business_ids_with,
    choices_for,
    has_business_field,
    is_platform_shared,
    is_superuser,
    member_roles,
    scope_to,
)
from icmp.errors import ApplicationError


def pretty_json(value: Any) -> str:
    """JSON, indented and escaped, for read-only admin fields."""
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', text)


def copy_saved(obj: Model, saved: Model) -> None:
    """Make the admin's unsaved `obj` the row a service created or updated.

    The admin logs and redirects with the instance it passed to save_model.
    """
    for field in obj._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding = False
    obj._state.db = saved._state.db


def changed_model_fields(form: forms.ModelForm) -> list[str]:
    names = {field.name for field in form._meta.model._meta.concrete_fields}
    return [name for name in form.changed_data if name in names]


class TenantRelatedFilter(admin.RelatedFieldListFilter):
    """A related-object filter listing only what the user may see.

    Django's own filter lists the whole related table (every tenant's
    businesses, stages, channels), and `RelatedOnlyFieldListFilter` runs a
    DISTINCT over the filtered table, too slow for messages.
    """

    def field_choices(self, field, request, model_admin):
        related = field.related_model
        queryset = related._default_manager.all()
        if has_business_field(related):
            queryset = queryset.select_related("business")
        if not is_superuser(request):
            if related is Business or has_business_field(related):
                queryset = scope_to(queryset, member_roles(request))
            else:
                queryset = queryset.none()
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            queryset = queryset.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in queryset]


class TenantModelForm(forms.ModelForm):
    """Refuses links across tenants: every related row belongs to the row's business.

    `newest_wins_fields` name flags kept unique by the services, which clear
    the previous holder ("one initial stage", "one default template"); the
    form must not refuse what the service will settle.
    """

    newest_wins_fields: tuple[str, ...] = ()

    def _get_validation_exclusions(self):
        return {*super()._get_validation_exclusions(), *self.newest_wins_fields}

    def clean(self):
        cleaned = super().clean()
        if "business" in self.fields:
            business = cleaned.get("business")
            business_id = business.pk if business is not None else None
        else:
            business_id = getattr(self.instance, "business_id", None)
        if business_id is None:
            return cleaned
        for name, value in list(cleaned.items()):
            if not isinstance(value, Model) or isinstance(value, Business):
                continue
            if not has_business_field(type(value)):
                continue
            if value.business_id == business_id:
                continue
            if value.business_id is None and is_platform_shared(type(value)):
                continue
            self.add_error(name, f"Choose a {value._meta.verbose_name} of the same business.")
        return cleaned


class TenantAdminMixin:
    """Scoping, role-based permissions and tenant-safe forms for one model admin.

    Who may view, add, change and delete, and which fields each may set, is
    the model's row of `icmp.access.ACCESS`, the table the API obeys too;
    superusers may do what its `platform` column says, to every field.
    `tenant_field` leads from the model to its business ("pk" for Business;
    None for platform records no tenant owns, such as raw webhook bodies).
    `platform_rows` shows rows with no business (platform defaults) to every
    member, read-only. `write_only_fields` are never shown read-only (their
    value would be on the page): the admin leaves them out of its fieldsets
    where the table does not let the user set them.
    """

    tenant_field: str | None = "business"
    platform_rows = False
    # Fields fixed once the row exists (shown, validated, never changed).
    locked_on_change: tuple[str, ...] = ()
    write_only_fields: tuple[str, ...] = ()
    form = TenantModelForm

    # -- who may do what ------------------------------------------------------

    @property
    def access(self) -> Access:
        return access_for(self.model._meta.label_lower)

    def tenant_id_of(self, obj: Model) -> Any:
        if self.tenant_field is None:
            return None
        return obj.pk if self.tenant_field == "pk" else getattr(obj, f"{self.tenant_field}_id")

    def role_on(self, request: HttpRequest, obj: Model) -> str | None:
        business_id = self.tenant_id_of(obj)
        return None if business_id is None else member_roles(request).get(business_id)

    def may(self, request: HttpRequest, action: Action, obj: Model | None = None) -> bool:
        """The table's answer for this user; without `obj`, whether any of their businesses allows it."""
        if is_superuser(request):
            return action in self.access.platform
        roles = self.access.roles(action)
        if obj is None:
            return any(role in roles for role in member_roles(request).values())
        return self.role_on(request, obj) in roles

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) or self.may(request, "view")

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        if is_superuser(request):
            return True
        if obj is not None and self.tenant_id_of(obj) is None:
            return self.platform_rows and bool(member_roles(request))
        return self.may(request, "view", obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.may(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.may(request, "change", obj)

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return self.may(request, "delete", obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Model | None = None):
        """Every field the table does not let this user's roles set is shown, not edited."""
        readonly = list(super().get_readonly_fields(request, obj))
        if is_superuser(request):
            return readonly
        if obj is None:
            allowed = {self.tenant_field, *self.access.add_fields}
        else:
            allowed = {self.tenant_field, *self.locked_on_change, *self.access.change_fields}
        for field in self.model._meta.concrete_fields:
            skip = not field.editable or field.primary_key or field.name in self.write_only_fields
            if not skip and field.name not in allowed and field.name not in readonly:
                readonly.append(field.name)
        return readonly

    # -- what they see ----------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)
        if is_superuser(request):
            return queryset
        if self.tenant_field is None:
            return queryset.none()
        condition = Q(**{f"{self.tenant_field}__in": list(member_roles(request))})
        if self.platform_rows:
            condition |= Q(**{f"{self.tenant_field}__isnull": True})
        return queryset.filter(condition)

    def writable(self, request: HttpRequest, queryset: QuerySet, action: Action = "change") -> QuerySet:
        """The part of `queryset` the user may change (or delete, ...) in a bulk action."""
        if is_superuser(request):
            return queryset if action in self.access.platform else queryset.none()
        business_ids = business_ids_with(request, self.access.roles(action))
        return queryset.filter(**{f"{self.tenant_field}__in": business_ids})

    def get_object(self, request: HttpRequest, object_id, from_field=None):
        """Another tenant's id (or an unknown one) is a 404, never a redirect."""
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            if not self.has_view_or_change_permission(request):
                raise PermissionDenied
            raise Http404(f"No {self.opts.verbose_name} with this id.")
        return obj

    # -- forms ------------------------------------------------------------------

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not is_superuser(request):
            if "queryset" not in kwargs:
                queryset = choices_for(request, db_field.related_model, write_roles=self.access.writers)
                if queryset is not None:
                    kwargs["queryset"] = queryset
            if db_field.name == self.tenant_field:
                # Only superusers write platform rows (a null business).
                kwargs["required"] = True
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request: HttpRequest, obj: Model | None = None, change: bool = False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        fields = form.base_fields
        if obj is None:
            if self.tenant_field in fields and not is_superuser(request):
                fields[self.tenant_field].queryset = Business.objects.filter(
                    pk__in=business_ids_with(request, self.access.add)
                )
            return form
        business_id = self.tenant_id_of(obj)
        for name, field in fields.items():
            if name == self.tenant_field or name in self.locked_on_change:
                # Moving a row to another tenant would strand everything pointing at it.
                field.disabled = True
            elif (
                business_id is not None
                and isinstance(field, forms.ModelChoiceField)
                and has_business_field(field.queryset.model)
            ):
                condition = Q(business=business_id)
                if is_platform_shared(field.queryset.model):
                    condition |= Q(business__isnull=True)
                field.queryset = field.queryset.filter(condition)
        return form

    def save_model(self, request: HttpRequest, obj: Model, form, change: bool) -> None:
        """Writes only what the form changed: workers update these rows too."""
        self.check_writable(request, obj)
        if change:
            fields = changed_model_fields(form)
            if fields:
                obj.save(update_fields=[*fields, "updated_at"])
        else:
            obj.save()

    def check_writable(self, request: HttpRequest, obj: Model) -> None:
        if not self.may(request, "add" if obj._state.adding else "change", obj):
            raise PermissionDenied

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        if any(not self.has_delete_permission(request, obj) for obj in objs):
            perms_needed.add(self.opts.verbose_name)
        return deleted, model_count, perms_needed, protected

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().delete_queryset(request, self.writable(request, queryset, "delete"))

    # -- a refused write is a message, not a 500 --------------------------------

    def _refused(self, request: HttpRequest, exc: ApplicationError):
        self.message_user(request, exc.message, messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            return self._refused(request, exc)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:
            return self._refused(request, exc)

    def changelist_view(self, request, extra_context=None):
        try:
            return super().changelist_view(request, extra_context)
        except ApplicationError as exc:
            return self._refused(request, exc)


class TenantAdmin(TenantAdminMixin, admin.ModelAdmin):
    pass


class TenantHistoryAdmin(TenantAdminMixin, SimpleHistoryAdmin):
    """Versioned models: the history pages are scoped like the change page.

    simple_history looks deleted or foreign rows up in the history table and
    lets its revert form POST with view rights only; both are closed here.
    """

    def history_view(self, request, object_id, extra_context=None):
        self.get_object(request, unquote(object_id))
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if request.method == "POST" and not self.has_change_permission(request, obj):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class LargeTableMixin:
    """List pages of message-sized tables: bounded counts, no facet counts."""

    paginator = BoundedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
