"""Admin pages shared by prompt templates and stages: version diffs, one-click revert,
and the preview playground.

`VersionedAdminMixin` goes before `TenantHistoryAdmin` in a model admin. Every
page looks the object up with the admin's scoped `get_object` (another
tenant's id is a 404), viewers read, and only the business's editors revert
or run dry turns (a dry run spends tokens).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import messages
from django.contrib.admin.utils import flatten_fieldsets, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from businesses.models import EDIT_ROLES, Business
from icmp.admin_tenancy import is_superuser, member_roles
from icmp.errors import ApplicationError
from stages.models import Stage
from templates_app.models import PromptTemplate

# Choices listed in the playground's conversation select (any id of the business is accepted).
PLAYGROUND_CONVERSATION_CHOICES = 200
_VERSION_PAGE_ATTR = "_icmp_version_page"


# --- diffs -------------------------------------------------------------------------


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


# --- the playground form -------------------------------------------------------------


class PlaygroundForm(forms.Form):
    business = forms.ModelChoiceField(queryset=Business.objects.none(), required=False)
    # The queryset is set per request: templates_app does not import conversations
    # (style guide); the playground's pipeline pieces are imported where they run.
    conversation = forms.ModelChoiceField(
        queryset=Business.objects.none(),
        required=False,
        help_text="Preview the answer to the customer's latest message(s) in this conversation.",
    )
    stage = forms.ModelChoiceField(
        queryset=Stage.objects.none(), required=False, help_text="Empty: the conversation's stage."
    )
    sample_text = forms.CharField(
        label="Sample customer message",
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text="Typed alone: a new customer. With a conversation: sent after its history.",
    )

    def __init__(self, *args: Any, business_ids: list[Any], fixed_business: Business | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fixed_business = fixed_business
        if fixed_business is not None:
            del self.fields["business"]
            scope = {"business": fixed_business}
        else:
            self.fields["business"].queryset = Business.objects.filter(pk__in=business_ids)
            self.fields[
                "business"
            ].help_text = "A platform template is previewed with one of your businesses."
            scope = {"business__in": business_ids}
        conversation_model = apps.get_model("conversations", "Conversation")
        conversations = conversation_model.objects.filter(**scope).select_related(
            "contact", "channel_account", "business"
        )
        self.fields["conversation"].queryset = conversations
        # The select lists the most recent ones; any id of the business still validates.
        recent = conversations.order_by("-last_message_at")[:PLAYGROUND_CONVERSATION_CHOICES]
        self.fields["conversation"].widget.choices = [("", "---------")] + [
            (c.pk, self._conversation_label(c)) for c in recent
        ]
        self.fields["stage"].queryset = Stage.objects.filter(**scope).select_related("business")

    def _conversation_label(self, conversation: Any) -> str:
        who = conversation.contact.name or conversation.contact.external_id
        when = conversation.last_message_at.strftime("%Y-%m-%d %H:%M")
        label = f"{who} · {conversation.channel_account.kind} · {when}"
        return label if self.fixed_business else f"{label} ({conversation.business.name})"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        conversation, stage = cleaned.get("conversation"), cleaned.get("stage")
        business = self.fixed_business or cleaned.get("business")
        if business is None and conversation is not None:
            business = conversation.business
        if business is None and not self.errors:
            self.add_error("business", "Choose the business to preview with.")
        for name, row in (("conversation", conversation), ("stage", stage)):
            if business is not None and row is not None and row.business_id != business.pk:
                self.add_error(name, f"Choose a {name} of {business.name}.")
        if conversation is None and not (cleaned.get("sample_text") or "").strip() and not self.errors:
            self.add_error(None, "Pick a conversation or type a sample customer message.")
        cleaned["business"] = business
        return cleaned


# --- the admin mixin -----------------------------------------------------------------


class VersionedAdminMixin:
    """History with diffs and revert, and the playground, for a tenant history admin."""

    diff_fields: tuple[DiffField, ...] = ()
    object_history_template = "admin/templates_app/object_history.html"
    object_history_form_template = "admin/templates_app/object_history_form.html"
    history_compare_template = "admin/templates_app/history_compare.html"
    playground_template = "admin/templates_app/playground.html"

    # -- hooks -------------------------------------------------------------------------

    def version_restore(self, *, request: HttpRequest, obj: Model, record: Model) -> Model:
        """Write `record`'s values back through the services (a new version)."""
        raise NotImplementedError

    def playground_target(self, obj: Model) -> dict[str, Any]:
        """`template=` or `stage=` for the playground service."""
        raise NotImplementedError

    def version_links(self, obj: Model, record: Model) -> list[tuple[str, str]]:
        """Extra (label, url) links on a version page."""
        return []

    # -- urls --------------------------------------------------------------------------

    def _url_name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def _admin_url(self, view: str, *args: Any) -> str:
        return reverse(f"{self.admin_site.name}:{self._url_name(view)}", args=args)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/history-compare/",
                wrap(self.history_compare_view),
                name=self._url_name("history_compare"),
            ),
            path(
                "<path:object_id>/history/<int:history_id>/revert/",
                wrap(self.history_revert_view),
                name=self._url_name("history_revert"),
            ),
            path(
                "<path:object_id>/playground/", wrap(self.playground_view), name=self._url_name("playground")
            ),
            *super().get_urls(),
        ]

    # -- history list ------------------------------------------------------------------

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

    # -- playground --------------------------------------------------------------------

    def may_dry_run(self, request: HttpRequest, business: Business | None) -> bool:
        if is_superuser(request):
            return True
        return business is not None and member_roles(request).get(business.pk) in EDIT_ROLES

    def _playground_businesses(self, request: HttpRequest) -> list[Any]:
        if is_superuser(request):
            return list(Business.objects.values_list("pk", flat=True))
        return list(member_roles(request))

    def playground_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))
        target = self.playground_target(obj)
        fixed = obj.business if obj.business_id else None
        form = PlaygroundForm(
            request.POST if request.method == "POST" else None,
            business_ids=self._playground_businesses(request),
            fixed_business=fixed,
        )
        if "stage" in target:
            # A stage playground previews that stage; a template one may pick any.
            del form.fields["stage"]
        prompts, dry_run = None, None
        wants_dry_run = "_dry_run" in request.POST
        if request.method == "POST" and form.is_valid():
            business = form.cleaned_data["business"]
            if wants_dry_run and not self.may_dry_run(request, business):
                raise PermissionDenied
            from conversations.playground import (
                playground_context_build,
                playground_dry_run,
                playground_prompts_render,
            )

            try:
                ctx = playground_context_build(
                    business=business,
                    conversation=form.cleaned_data.get("conversation"),
                    sample_text=form.cleaned_data.get("sample_text") or "",
                    stage=form.cleaned_data.get("stage") or target.get("stage"),
                    template=target.get("template"),
                )
            except ApplicationError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                template = target.get("template")
                prompts = playground_prompts_render(ctx=ctx, kind=template.kind if template else None)
                if wants_dry_run:
                    dry_run = playground_dry_run(ctx=ctx)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Playground: {obj}",
            "opts": self.opts,
            "object": obj,
            "form": form,
            "prompts": prompts,
            "dry_run": dry_run,
            "may_dry_run": self.may_dry_run(request, fixed) if fixed else True,
            "change_url": self._admin_url("change", obj.pk),
            "llm_call_url_name": "admin:conversations_llmcall_change",
        }
        return render(request, self.playground_template, context, status=400 if form.errors else 200)
