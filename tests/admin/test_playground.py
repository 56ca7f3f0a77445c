"""The preview playground of templates and stages: rendered prompts and dry turns that
send nothing and change no conversation."""

from __future__ import annotations

import uuid

import pytest
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse

from conversations.models import Author, Contact, Conversation, Direction, LLMCall, Message, MessageStatus
from stages.models import Stage
from templates_app.models import TemplateKind
from templates_app.services import template_create

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def playground_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_playground", args=[obj.pk])


def customer_says(tenant, text: str) -> Message:
    return Message.objects.create(
        business=tenant.business,
        conversation=tenant.conversation,
        channel_account=tenant.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text=text,
        status=MessageStatus.RECEIVED,
    )


def conversation_state(conversation: Conversation) -> dict:
    row = Conversation.objects.get(pk=conversation.pk)
    return {**model_to_dict(row), "updated_at": row.updated_at, "last_message_at": row.last_message_at}


# -- render ---------------------------------------------------------------------------


def test_render_shows_the_rendered_system_prompt_and_the_conversation_escaped(alice, alice_editor):
    customer_says(alice, "<script>alert(1)</script> a table please")

    response = login(alice_editor).post(
        playground_url(alice.template), {"conversation": alice.conversation.pk, "_render": "Render"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "You are Assistant for Alice&#x27;s Bakery." in html  # the template, rendered
    assert "Friendly reply v1 (previewed)" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a table please" in html
    assert "<script>alert(1)</script>" not in html
    # Only this template's kind is shown on a template's playground.
    assert [p.purpose for p in response.context["prompts"]] == ["response"]
    messages = response.context["prompts"][0].messages
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_the_previewed_template_is_used_even_when_no_stage_uses_it(alice, alice_editor):
    draft = template_create(
        business=alice.business,
        kind=TemplateKind.RESPONSE_GENERATION,
        name="Draft",
        content="Draft instructions for {{ business.name }}.",
    )

    html = (
        login(alice_editor)
        .post(playground_url(draft), {"sample_text": "Hi", "_render": "Render"})
        .content.decode()
    )

    assert "Draft instructions for Alice&#x27;s Bakery." in html


def test_a_stage_playground_renders_every_call_for_that_stage(alice, alice_editor):
    stage = Stage.objects.create(business=alice.business, key="booking", name="Booking", data_schema=SCHEMA)

    response = login(alice_editor).post(
        playground_url(stage), {"conversation": alice.conversation.pk, "_render": "Render"}
    )

    assert response.status_code == 200
    assert [p.purpose for p in response.context["prompts"]] == ["selection", "extraction", "response"]
    assert "Current stage: booking" in response.content.decode()
    assert "stage" not in response.context["form"].fields


def test_a_sample_message_alone_creates_no_rows(alice, alice_editor):
    counts = (Conversation.objects.count(), Contact.objects.count(), Message.objects.count())

    response = login(alice_editor).post(
        playground_url(alice.stage), {"sample_text": "Do you bake <em>vegan</em> cakes?", "_render": "Render"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "Do you bake &lt;em&gt;vegan&lt;/em&gt; cakes?" in html
    assert (Conversation.objects.count(), Contact.objects.count(), Message.objects.count()) == counts


def test_a_platform_template_is_previewed_with_one_of_the_users_businesses(alice, bob, alice_editor):
    platform = template_create(
        business=None,
        kind=TemplateKind.RESPONSE_GENERATION,
        name="Platform reply",
        content="Platform text for {{ business.name }}.",
    )
    client = login(alice_editor)

    page = client.get(playground_url(platform))
    assert page.status_code == 200
    choices = {str(pk) for pk, _ in page.context["form"].fields["conversation"].widget.choices if pk}
    assert choices == {str(alice.conversation.pk)}

    html = client.post(
        playground_url(platform), {"business": alice.business.pk, "sample_text": "Hi", "_render": "Render"}
    ).content.decode()
    assert "Platform text for Alice&#x27;s Bakery." in html

    refused = client.post(
        playground_url(platform), {"business": bob.business.pk, "sample_text": "Hi", "_render": "Render"}
    )
    assert refused.status_code == 400
    assert "Bob" not in refused.content.decode()


# -- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["unknown", "malformed", "bobs"])
def test_a_conversation_that_is_not_the_businesses_is_a_form_error(alice, bob, alice_editor, which):
    conversation_id = {"unknown": uuid.uuid4(), "malformed": "not-a-uuid", "bobs": bob.conversation.pk}[which]

    response = login(alice_editor).post(
        playground_url(alice.template), {"conversation": conversation_id, "_dry_run": "Dry run"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["conversation"]
    offered = {str(pk) for pk, _ in response.context["form"].fields["conversation"].widget.choices}
    assert str(bob.conversation.pk) not in offered
    assert str(alice.conversation.pk) in offered
    assert LLMCall.objects.filter(dry_run=True).count() == 0


def test_no_conversation_and_no_sample_is_a_form_error(alice, alice_editor):
    response = login(alice_editor).post(
        playground_url(alice.template), {"sample_text": "   ", "_render": "Render"}
    )

    assert response.status_code == 400
    assert "Pick a conversation or type a sample customer message." in response.content.decode()


def test_a_conversation_with_no_customer_message_asks_for_a_sample(alice, alice_editor):
    Message.objects.filter(conversation=alice.conversation, direction=Direction.IN).delete()

    response = login(alice_editor).post(
        playground_url(alice.template), {"conversation": alice.conversation.pk, "_render": "Render"}
    )

    assert response.status_code == 400
    assert "no customer message yet" in response.content.decode()


def test_the_stage_picked_for_a_template_must_be_the_businesses(alice, bob, alice_editor):
    response = login(alice_editor).post(
        playground_url(alice.template), {"stage": bob.stage.pk, "sample_text": "Hi", "_render": "Render"}
    )

    assert response.status_code == 400
    assert response.context["form"].errors["stage"]


# -- dry run ------------------------------------------------------------------------


def test_a_dry_run_shows_the_turn_and_changes_nothing(alice, alice_editor, fake_llm, fake_graph):
    stage = Stage.objects.create(business=alice.business, key="booking", name="Booking", data_schema=SCHEMA)
    customer_says(alice, "I'm Ana")
    fake_llm.on("selection", {"stage": "booking"})
    fake_llm.on("extraction", {"name": "Ana"})
    fake_llm.on("response", {"reply": "Welcome <b>Ana</b>!", "quick_replies": ["Book"]})
    before = conversation_state(alice.conversation)
    messages = Message.objects.count()

    response = login(alice_editor).post(
        playground_url(alice.template), {"conversation": alice.conversation.pk, "_dry_run": "Dry run"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    dry_run = response.context["dry_run"]
    assert dry_run.refused is None and dry_run.failure is None
    assert "Welcome &lt;b&gt;Ana&lt;/b&gt;!" in html
    assert "<b>Ana</b>" not in html
    assert f"{dry_run.prompt_tokens} prompt + {dry_run.completion_tokens} completion" in html
    assert dry_run.prompt_tokens > 0 and dry_run.completion_tokens > 0
    assert dry_run.stage.key == "booking" and dry_run.stage_changed
    assert dry_run.extracted == {"name": "Ana"}
    assert "Booking (booking) — changed" in html

    calls = LLMCall.objects.filter(dry_run=True)
    assert sorted(calls.values_list("purpose", flat=True)) == ["extraction", "response", "selection"]
    assert set(calls.values_list("conversation_id", flat=True)) == {alice.conversation.pk}
    response_call = calls.get(purpose="response")
    assert (response_call.template_id, response_call.template_version) == (alice.template.pk, 1)
    # Nothing sent, nothing stored, the conversation as it was.
    assert fake_graph.requests == []
    assert Message.objects.count() == messages
    assert conversation_state(alice.conversation) == before
    assert stage.pk != before["stage"]


def test_a_dry_run_with_a_sample_message_writes_only_ledger_rows(alice, alice_editor, fake_llm, fake_graph):
    counts = (Conversation.objects.count(), Contact.objects.count(), Message.objects.count())

    response = login(alice_editor).post(
        playground_url(alice.stage), {"sample_text": "Hello there", "_dry_run": "Dry run"}
    )

    assert response.status_code == 200
    assert response.context["dry_run"].reply_text == "ok"
    calls = LLMCall.objects.filter(dry_run=True)
    assert calls.count() == 2  # selection and reply: the stage collects nothing
    assert set(calls.values_list("conversation_id", "message_id")) == {(None, None)}
    assert (Conversation.objects.count(), Contact.objects.count(), Message.objects.count()) == counts
    assert fake_graph.requests == []
    ledger = login(alice_editor).get("/admin/conversations/llmcall/?dry_run__exact=1").content.decode()
    assert all(str(call.pk) in ledger for call in calls)


def test_a_failing_llm_is_reported_and_the_calls_are_kept(alice, alice_editor, fake_llm, settings):
    from tests.fakes.openai_server import Reply

    settings.LLM_MAX_RETRIES = 0
    fake_llm.on("response", Reply.error(400, "bad request"))

    response = login(alice_editor).post(
        playground_url(alice.stage), {"sample_text": "Hi", "_dry_run": "Dry run"}
    )

    assert response.status_code == 200
    assert "The LLM failed during response" in response.content.decode()
    assert LLMCall.objects.filter(dry_run=True, outcome="error").count() == 1


def test_with_no_llm_configured_a_dry_run_says_so(alice, alice_editor):
    response = login(alice_editor).post(
        playground_url(alice.template), {"conversation": alice.conversation.pk, "_dry_run": "Dry run"}
    )

    assert response.status_code == 200
    assert "No LLM is configured" in response.content.decode()
    assert "You are Assistant for Alice&#x27;s Bakery." in response.content.decode()
    assert not LLMCall.objects.filter(dry_run=True).exists()


# -- who may do what --------------------------------------------------------------------


def test_a_viewer_renders_but_cannot_run_a_dry_turn(alice, alice_viewer, fake_llm):
    client = login(alice_viewer)

    page = client.get(playground_url(alice.template))
    assert page.status_code == 200
    assert 'name="_dry_run"' not in page.content.decode()
    rendered = client.post(playground_url(alice.template), {"sample_text": "Hi", "_render": "Render"})
    assert rendered.status_code == 200
    assert "You are Assistant" in rendered.content.decode()

    refused = client.post(playground_url(alice.template), {"sample_text": "Hi", "_dry_run": "Dry run"})
    assert refused.status_code == 403
    assert fake_llm.requests == []
    assert not LLMCall.objects.filter(dry_run=True).exists()


def test_bobs_playgrounds_answer_404_to_alices_editor(alice, bob, alice_editor, fake_llm):
    client = login(alice_editor)

    for obj in (bob.template, bob.stage):
        assert client.get(playground_url(obj)).status_code == 404
        posted = client.post(
            playground_url(obj), {"conversation": bob.conversation.pk, "_dry_run": "Dry run"}
        )
        assert posted.status_code == 404
    assert fake_llm.requests == []


def test_staff_of_no_business_are_refused_the_playground(alice, charlie):
    assert login(charlie).get(playground_url(alice.template)).status_code == 403


def test_a_spent_monthly_token_budget_refuses_the_dry_run(alice, alice_editor, fake_llm):
    from businesses.models import AIControlSettings

    # Alice's ledger already holds a call of 132 tokens this month.
    AIControlSettings.objects.filter(business=alice.business).update(monthly_token_budget=100)

    response = login(alice_editor).post(
        playground_url(alice.stage), {"sample_text": "Hi", "_dry_run": "Dry run"}
    )

    assert response.status_code == 200
    assert "No dry run: token budget exceeded" in response.content.decode()
    assert fake_llm.requests == []
