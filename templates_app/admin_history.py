"""Version history pages for prompt templates and stages: diffs, a version's page, compare and revert.

Every page looks the object up with the admin's scoped `get_object` (another
tenant's id is a 404); viewers read, and only the business's editors revert.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from icmp.errors import ApplicationError
from templates_app.models import PromptTemplate

_VERSION_PAGE_ATTR = "_icmp_version_page"


@dataclass(frozen=True)
class DiffField:
    name: str
    label: str
    # "text" (line diff), "json" (line diff of indented JSON), "template" (a template id), "value".
    kind: str = "value"


@dataclass(frozen=True)
class FieldChange:
    label: str
    changed: bool
    html: SafeString


def text_diff_html(old: str, new: str) -> SafeString:
    """A line diff, escaped: removed lines in <del>, added lines in <ins>."""
    before, after = old.splitlines(), new.splitlines()
    lines: list[SafeString] = []
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            lines.extend(format_html('<span class="diff-same">  {}</span>', line) for line in before[i1:i2])
            continue
        lines.extend(format_html("<del>- {}</del>", line) for line in before[i1:i2])
        lines.extend(format_html("<ins>+ {}</ins>", line) for line in after[j1:j2])
    return format_html(
        '<pre class="icmp-diff">{}</pre>', format_html_join("\n", "{}", ((line,) for line in lines))
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _template_name(template_id: Any) -> str:
    if template_id is None:
        return "none (business or platform default)"
    template = PromptTemplate.objects.filter(pk=template_id).first()
    return str(template) if template else f"deleted template {template_id}"


def version_changes(*, old: Model | None, new: Model, fields: tuple[DiffField, ...]) -> list[FieldChange]:
    """Field by field, what changed from `old` to `new` (history records; `old` None: created)."""
    changes = []
    for spec in fields:
        attname = f"{spec.name}_id" if spec.kind == "template" else spec.name
        before = getattr(old, attname) if old is not None else None
        after = getattr(new, attname)
        changed = old is None or before != after
        if spec.kind in ("text", "json"):
            to_text = _json_text if spec.kind == "json" else (lambda v: v or "")
            html = text_diff_html(to_text(before) if old is not None else "", to_text(after))
        elif spec.kind == "template":
            html = (
                format_html("<del>{}</del> → <ins>{}</ins>", _template_name(before), _template_name(after))
                if changed and old is not None
                else format_html("{}", _template_name(after))
            )
        else:
            html = (
                format_html("<del>{}</del> → <ins>{}</ins>", before, after)
                if changed and old is not None
                else format_html("{}", after)
            )
        changes.append(FieldChange(label=spec.label, changed=changed, html=html))
    return changes


class VersionHistoryViews:
    """The history views of VersionedAdminMixin, which supplies the hooks, templates and urls."""

    def compare(self, record: Model) -> SafeString:
        """Radio buttons to pick two versions, and a link to this version's changes."""
        # A history record's own pk is history_id; the object's id is under the model's pk name.
        url = self._admin_url("history_compare", getattr(record, self.opts.pk.attname))
        return format_html(
            '<label><input type="radio" name="from" value="{0}" form="icmp-compare"> from</label> '
            '<label><input type="radio" name="to" value="{0}" form="icmp-compare"> to</label> · '
            '<a href="{1}?to={0}">changes</a>',
            record.history_id,
            url,
        )

    def history_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        context = {
            "compare_url": self._admin_url("history_compare", obj.pk),
            "playground_url": self._admin_url("playground", obj.pk),
            **(extra_context or {}),
        }
        return super().history_view(request, object_id, context)

    def _version(self, obj: Model, history_id: Any) -> Model:
        try:
            history_id = int(history_id)
        except (TypeError, ValueError):
            raise Http404("No such version.") from None
        record = obj.history.filter(history_id=history_id).select_related("history_user").first()
        if record is None:
            raise Http404("No such version of this object.")
        return record

    # -- a version page ---------------------------------------------------------------

    def get_readonly_fields(self, request, obj=None):
        if getattr(request, _VERSION_PAGE_ATTR, False):
            # A version is shown, not edited: its Revert button restores it whole.
            return [
                *flatten_fieldsets(self.get_fieldsets(request, obj)),
                *super().get_readonly_fields(request, obj),
            ]
        return super().get_readonly_fields(request, obj)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        if request.method == "POST":
            # simple_history would save the posted form; ours restores through the services.
            return self._revert(request, obj, version_id)
        record = self._version(obj, version_id)
        setattr(request, _VERSION_PAGE_ATTR, True)
        context = {
            "version_record": record,
            "compare_current_url": (
                f"{self._admin_url('history_compare', obj.pk)}?from={record.history_id}"
                f"&to={obj.history.latest().history_id}"
            ),
            "version_links": self.version_links(obj, record),
            **(extra_context or {}),
        }
        return super().history_form_view(request, object_id, version_id, context)

    # -- compare -----------------------------------------------------------------------

    def history_compare_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        history = obj.history.select_related("history_user")
        picked = {}
        for name in ("from", "to"):
            value = request.GET.get(name)
            if value:
                picked[name] = self._version(obj, value)
        if "to" not in picked:
            picked["to"] = history.first()
            if picked["to"] is None:
                # Rows written around save() (bulk loads) have no versions to compare.
                self.message_user(request, "This object has no recorded versions yet.", messages.WARNING)
                return HttpResponseRedirect(self._admin_url("change", obj.pk))
        if "from" not in picked:
            picked["from"] = history.filter(history_date__lt=picked["to"].history_date).first()
        old, new = picked["from"], picked["to"]
        if old is not None and (old.history_date, old.history_id) > (new.history_date, new.history_id):
            old, new = new, old
        context = {
            **self.admin_site.each_context(request),
            "title": f"Changes: {obj}",
            "opts": self.opts,
            "object": obj,
            "old": old,
            "new": new,
            "changes": version_changes(old=old, new=new, fields=self.diff_fields),
            "history_url": self._admin_url("history", obj.pk),
            "may_revert": self.has_change_permission(request, obj),
            "revert_url": self._admin_url("history_revert", obj.pk, old.history_id) if old else None,
        }
        return render(request, self.history_compare_template, context)

    # -- revert ------------------------------------------------------------------------

    def history_revert_view(self, request: HttpRequest, object_id: str, history_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        obj = self.get_object(request, unquote(object_id))
        return self._revert(request, obj, history_id)

    def _revert(self, request: HttpRequest, obj: Model, history_id: Any) -> HttpResponse:
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        record = self._version(obj, history_id)
        history_url = self._admin_url("history", obj.pk)
        try:
            saved = self.version_restore(request=request, obj=obj, record=record)
        except ApplicationError as exc:
            self.message_user(request, f"Not reverted: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(history_url)
        when = record.history_date.strftime("%Y-%m-%d %H:%M:%S")
        self.message_user(request, f"Restored the version of {when} UTC: {saved}.", messages.SUCCESS)
        return HttpResponseRedirect(history_url)
