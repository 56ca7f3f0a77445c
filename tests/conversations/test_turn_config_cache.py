"""The turn config cache: every write of what a turn reads about a business bumps its
version, so the very next turn sees the edit; other businesses keep their entries."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from businesses.models import Agent, AIControlSettings, Business
from businesses.services import agent_update, ai_settings_update, business_update
from conversations.models import Author, Conversation, Direction, Message, MessageStatus
from conversations.pipeline.context_reader import turn_config_get
from conversations.turns import conversation_turn_process
from stages.models import Stage
from stages.services import stage_create, stage_delete, stage_update
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.services import template_create, template_update
from tests.admin import admin_url, form_post_data


def version(tenant) -> int:
    return Business.objects.values_list("config_version", flat=True).get(pk=tenant.business.pk)


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def turn(tenant, capture_callbacks, text: str = "Hello again") -> Message:
    """A new customer message in the tenant's conversation, answered by a turn."""
    Conversation.objects.filter(pk=tenant.conversation.pk).update(last_inbound_at=timezone.now())
    message = Message.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        channel_account=tenant.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text=text,
        status=MessageStatus.RECEIVED,
    )
    with capture_callbacks(execute=True):
        conversation_turn_process(conversation_id=tenant.conversation.pk, wait_for_burst=False)
    message.refresh_from_db()
    return message


def prompt_text(fake_llm, purpose: str) -> str:
    """Every message of the latest request of `purpose`, as one string."""
    return json.dumps(fake_llm.bodies(purpose)[-1]["messages"])


# -- every way of writing bumps the version ----------------------------------------------


def _second_stage(tenant) -> Stage:
    return stage_create(business=tenant.business, key="menu", name="Menu", order=5)


WRITES: dict[str, tuple[Callable, Callable]] = {
    # name: (prepare(tenant) -> obj, write(tenant, obj)); only the write is measured
    "stage_update": (lambda t: t.stage, lambda t, s: stage_update(stage=s, data={"description": "Now"})),
    "stage_create": (lambda t: None, lambda t, _: _second_stage(t)),
    "stage_delete": (_second_stage, lambda t, s: stage_delete(stage=s)),
    "stage save()": (lambda t: t.stage, lambda t, s: s.save()),
    "template_update": (
        lambda t: t.template,
        lambda t, tpl: template_update(template=tpl, data={"content": "Hi from {{ business.name }}."}),
    ),
    "template_create": (
        lambda t: None,
        lambda t, _: template_create(
            business=t.business, kind=TemplateKind.DATA_EXTRACTION, name="X", content="Extract."
        ),
    ),
    "agent_update": (
        lambda t: Agent.objects.get(business=t.business),
        lambda t, a: agent_update(agent=a, data={"persona": "A baker."}),
    ),
    "agent bulk_create": (
        lambda t: None,
        lambda t, _: Agent.objects.bulk_create([Agent(business=t.business, name="Second")]),
    ),
    "ai_settings_update": (
        lambda t: t.business.ai_settings,
        lambda t, s: ai_settings_update(ai_settings=s, data={"fallback_text": "Soon."}),
    ),
    "AIControlSettings queryset update": (
        lambda t: None,
        lambda t, _: AIControlSettings.objects.filter(business=t.business).update(burst_window_seconds=9),
    ),
    "Stage queryset update through the business": (
        lambda t: None,
        lambda t, _: t.business.stages.update(description="Bulk"),
    ),
    "business_update": (lambda t: t.business, lambda t, b: business_update(business=b, data={"name": "B"})),
    "Business queryset update": (
        lambda t: None,
        lambda t, _: Business.objects.filter(pk=t.business.pk).update(is_active=False),
    ),
}


@pytest.mark.parametrize("name", list(WRITES))
def test_every_kind_of_write_bumps_the_businesss_version(alice, bob, name):
    prepare, write = WRITES[name]
    obj = prepare(alice)
    before, bobs = version(alice), version(bob)

    write(alice, obj)

    assert version(alice) > before
    assert version(bob) == bobs


def test_a_platform_template_is_every_businesss(alice, bob):
    before = (version(alice), version(bob))

    template_create(business=None, kind=TemplateKind.STAGE_SELECTION, name="Platform", content="Pick.")

    assert version(alice) > before[0] and version(bob) > before[1]


def test_a_save_of_a_business_read_before_a_bump_does_not_write_its_version_back(alice):
    stale = Business.objects.get(pk=alice.business.pk)
    stage_update(stage=alice.stage, data={"description": "Bumped"})
    bumped = version(alice)

    stale.name = "Renamed"
    stale.save()

    assert version(alice) > bumped


def test_another_businesss_cached_config_is_untouched(alice, bob):
    bobs_business = Business.objects.get(pk=bob.business.pk)
    cached = turn_config_get(business=bobs_business)

    stage_update(stage=alice.stage, data={"description": "Only Alice's"})
    template_update(template=alice.template, data={"content": "Only {{ business.name }}."})

    bobs_business = Business.objects.get(pk=bob.business.pk)
    with CaptureQueriesContext(connection) as queries:
        again = turn_config_get(business=bobs_business)
    assert len(queries) == 0
    assert again.version == cached.version and [s.description for s in again.stages] == [
        s.description for s in cached.stages
    ]


# -- the very next turn sees the edit ----------------------------------------------------


def test_a_stage_edited_through_the_service_is_in_the_next_turns_prompt(
    alice, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    stage_create(business=alice.business, key="menu", name="Menu", description="Questions about bread.")
    turn(alice, django_capture_on_commit_callbacks)  # the config is cached now
    assert "Questions about bread." in prompt_text(fake_llm, "selection")

    stage_update(stage=Stage.objects.get(business=alice.business, key="menu"), data={"description": "Cakes."})
    answered = turn(alice, django_capture_on_commit_callbacks)

    assert answered.status == MessageStatus.ANSWERED
    assert "Cakes." in prompt_text(fake_llm, "selection")
    assert "Questions about bread." not in prompt_text(fake_llm, "selection")


def test_a_template_edited_and_reverted_in_the_admin_is_used_by_the_next_turn(
    alice, alice_editor, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    stage_update(stage=alice.stage, data={"response_template": alice.template})
    turn(alice, django_capture_on_commit_callbacks)
    assert "You are Assistant for Alice" in prompt_text(fake_llm, "response")
    first = alice.template.history.order_by("history_date", "history_id").last().history_id

    client = login(alice_editor)
    page = client.get(admin_url(alice.template, "change"))
    edited = "Speak like a pirate for {{ business.name }}."
    response = client.post(admin_url(alice.template, "change"), {**form_post_data(page), "content": edited})
    assert response.status_code == 302
    turn(alice, django_capture_on_commit_callbacks)
    assert "Speak like a pirate" in prompt_text(fake_llm, "response")

    revert = reverse("admin:templates_app_prompttemplate_history_revert", args=[alice.template.pk, first])
    response = client.post(revert)
    assert response.status_code == 302
    turn(alice, django_capture_on_commit_callbacks)
    assert "You are Assistant for Alice" in prompt_text(fake_llm, "response")
    assert PromptTemplate.objects.get(pk=alice.template.pk).version == 3


def test_ai_settings_and_the_agent_changed_through_the_api_apply_to_the_next_turn(
    alice, fake_llm, fake_graph, django_capture_on_commit_callbacks
):
    turn(alice, django_capture_on_commit_callbacks)
    agent = Agent.objects.get(business=alice.business, is_default=True)
    api = alice.client()

    assert (
        api.patch(f"/api/v1/agents/{agent.pk}/", {"persona": "A cheerful baker."}, format="json").status_code
        == 200
    )
    turn(alice, django_capture_on_commit_callbacks)
    assert "A cheerful baker." in prompt_text(fake_llm, "response")

    assert (
        api.patch("/api/v1/business/ai-settings/", {"auto_reply_enabled": False}, format="json").status_code
        == 200
    )
    skipped = turn(alice, django_capture_on_commit_callbacks)
    assert skipped.status == MessageStatus.SKIPPED
    assert skipped.error == "Auto-reply is off for this business."
