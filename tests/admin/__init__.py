"""Helpers shared by the admin tests: one object of every registered model per tenant."""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.forms import PasswordInput
from django.urls import reverse

from businesses.models import Agent, AIControlSettings, APIKey, Business
from channels_app.models import ChannelAccount, WebhookEvent, WebhookEventPart
from conversations.models import Contact, Conversation, LLMCall, Message
from stages.models import Stage
from templates_app.models import PromptTemplate

TENANT_MODELS: list[type[Model]] = [
    Business,
    Agent,
    APIKey,
    AIControlSettings,
    Stage,
    PromptTemplate,
    ChannelAccount,
    WebhookEventPart,
    Contact,
    Conversation,
    Message,
    LLMCall,
]
LARGE_TABLES: list[type[Model]] = [Message, LLMCall, WebhookEvent, WebhookEventPart, Conversation, Contact]


def objects_of(tenant) -> dict[type[Model], Model]:
    """One row of each registered model belonging to `tenant` (a conftest Tenant)."""
    business = tenant.business
    event = WebhookEvent.objects.create(
        channel="whatsapp", body='{"object": "whatsapp_business_account"}', status="processed"
    )
    part = WebhookEventPart.objects.create(
        event=event, business=business, channel="whatsapp", channel_account=tenant.channel
    )
    return {
        Business: business,
        Agent: Agent.objects.get(business=business, is_default=True),
        APIKey: APIKey.objects.filter(business=business).first(),
        AIControlSettings: AIControlSettings.objects.get(business=business),
        Stage: tenant.stage,
        PromptTemplate: tenant.template,
        ChannelAccount: tenant.channel,
        WebhookEventPart: part,
        Contact: tenant.contact,
        Conversation: tenant.conversation,
        Message: tenant.messages[0],
        LLMCall: tenant.llm_call,
    }


def admin_url(model_or_obj: Any, view: str, *args: Any) -> str:
    opts = model_or_obj._meta
    if isinstance(model_or_obj, Model) and view in ("change", "history", "delete"):
        args = (model_or_obj.pk, *args)
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def form_post_data(response) -> dict[str, Any]:
    """What a browser would post back from an admin change page, unchanged."""
    forms = [response.context["adminform"].form]
    data: dict[str, Any] = {}
    for inline in response.context.get("inline_admin_formsets") or []:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[management[name].html_name] = management[name].value()
        forms.extend(formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            if field.disabled:
                continue
            bound = form[name]
            if isinstance(field.widget, PasswordInput):
                # Browsers get these empty (render_value=False) and post them empty.
                data[bound.html_name] = ""
                continue
            value = bound.value()
            if isinstance(value, bool):
                if value:
                    data[bound.html_name] = "on"
            elif value is None:
                if not getattr(field.widget, "allow_multiple_selected", False):
                    data[bound.html_name] = ""
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [str(v) for v in value]
            else:
                data[bound.html_name] = str(value)
    return data
