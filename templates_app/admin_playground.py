"""The preview playground for prompt templates and stages: the form and the view.

Viewers see the rendered prompts; only the business's editors run dry turns
(a dry run spends tokens).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.apps import apps
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from businesses.models import EDIT_ROLES, Business
from icmp.admin_roles import is_superuser, member_roles
from icmp.errors import ApplicationError
from stages.models import Stage

# Choices listed in the playground's conversation select (any id of the business is accepted).
PLAYGROUND_CONVERSATION_CHOICES = 200


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


class PlaygroundViews:
    """The playground view of VersionedAdminMixin, which supplies `playground_target` and the urls."""

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
