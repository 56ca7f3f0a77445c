"""The platform-default prompt templates and the service that seeds them."""

from __future__ import annotations

import json

import pytest

from businesses.services import business_create
from stages.models import Stage
from templates_app.defaults import (
    DEFAULT_TEMPLATES,
    SeedAction,
    business_default_stages_ensure,
    platform_templates_seed,
)
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.rendering import VARIABLES, render, sample_context, template_problems

HANDOFF = "__handoff__"

QUALIFICATION = {
    "key": "qualification",
    "name": "Qualification",
    "description": "The customer wants a consultation; learn their name and email.",
    "is_handoff": False,
    "data_schema": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "Full name"},
            "email": {"type": "string", "format": "email", "description": "Address for the confirmation"},
        },
        "required": ["name", "email"],
    },
}
HANDOFF_STAGE = {
    "key": "handoff",
    "name": "Handoff",
    "description": "The customer asks for a person.",
    "is_handoff": True,
    "data_schema": {},
}


def full_context() -> dict:
    return {
        "business": {
            "name": "Bike Doctor",
            "config": {
                "description": "We repair bicycles in Lisbon.",
                "website": "https://bike.example",
                "language": "pt-PT",
                "timezone": "Europe/Lisbon",
                "tone": "Relaxed",
                "contact": {"email": "oi@bike.example", "phone": "+351 210 000 000", "address": "Rua 1"},
                "opening_hours": {"sun": "closed", "mon": "09:00-18:00", "tue": "10:00-19:00"},
                "faq": [{"question": "Do you sell bikes?", "answer": "No, repairs only."}],
                "extra": {"parking": "Free parking behind the shop"},
            },
        },
        "agent": {
            "name": "Rita",
            "persona": "Calm and kind.",
            "instructions": "Mention the 1-year warranty.",
        },
        "stage": QUALIFICATION,
        "stages": [
            {"key": "greeting", "name": "Greeting", "description": "Hello.", "is_handoff": False},
            QUALIFICATION,
            HANDOFF_STAGE,
        ],
        "collected_data": {"name": "Ana"},
        "contact": {"name": "Ana", "channel": "whatsapp"},
        "now": "2026-03-02T10:00:00+00:00",
        "handoff_key": HANDOFF,
        "schema": QUALIFICATION["data_schema"],
        "missing_fields": ["email"],
        "quick_replies_allowed": True,
    }


def bare_context() -> dict:
    """A business that filled in nothing, a conversation with no stage yet."""
    return {
        **full_context(),
        "business": {"name": "Bare", "config": {}},
        "agent": {"name": "Assistant", "persona": "", "instructions": ""},
        "stage": None,
        "collected_data": {},
        "contact": {"name": "", "channel": "api"},
        "missing_fields": [],
        "quick_replies_allowed": False,
    }


def rendered(kind: str, context: dict) -> str:
    return render(kind=kind, content=DEFAULT_TEMPLATES[kind].content, context=context)


def test_there_is_one_default_for_every_template_kind():
    assert set(DEFAULT_TEMPLATES) == set(TemplateKind.values) == set(VARIABLES)
    assert all(default.kind == kind for kind, default in DEFAULT_TEMPLATES.items())


@pytest.mark.parametrize("kind", TemplateKind.values)
def test_each_default_passes_the_template_checks_of_its_kind(kind):
    assert template_problems(kind=kind, content=DEFAULT_TEMPLATES[kind].content) == []


@pytest.mark.parametrize("kind", TemplateKind.values)
@pytest.mark.parametrize(
    "context", [sample_context, lambda kind: full_context(), lambda kind: bare_context()]
)
def test_each_default_renders_with_a_full_a_sample_and_an_empty_business(kind, context):
    text = rendered(kind, context(kind))

    assert text
    assert "\n\n\n" not in text  # tidy output: no runs of blank lines from template tags


def test_stage_selection_lists_every_stage_and_asks_for_one_key_or_the_handoff_key():
    text = rendered(TemplateKind.STAGE_SELECTION, full_context())

    for key, description in [("greeting", "Hello."), ("qualification", "learn their name"), ("handoff", "")]:
        assert f"- {key}: " in text
        assert description in text
    assert "Current stage: qualification (Qualification)" in text
    assert "- name: Ana" in text
    assert text.count(HANDOFF) >= 2  # when to use it, and as an allowed answer
    assert "exactly one stage key" in text


def test_data_extraction_gives_the_schema_and_collected_data_and_forbids_invention():
    context = full_context()
    text = rendered(TemplateKind.DATA_EXTRACTION, context)

    schema_line = next(line for line in text.splitlines() if line.startswith('{"properties"'))
    assert json.loads(schema_line) == context["schema"]
    assert '{"name": "Ana"}' in text
    assert "Never guess, infer or invent" in text
    assert "left out" in text
    assert "one JSON object" in text


def test_data_extraction_says_when_nothing_is_collected_yet():
    assert "nothing yet" in rendered(TemplateKind.DATA_EXTRACTION, bare_context())


def test_response_generation_carries_persona_facts_stage_and_missing_fields():
    text = rendered(TemplateKind.RESPONSE_GENERATION, full_context())

    for fact in [
        "You are Rita, the virtual assistant of Bike Doctor",
        "Calm and kind.",
        "Mention the 1-year warranty.",
        "We repair bicycles in Lisbon.",
        "Website: https://bike.example",
        "Phone: +351 210 000 000",
        "Email: oi@bike.example",
        "Address: Rua 1",
        "Opening hours (Europe/Lisbon):",
        "Q: Do you sell bikes?\nA: No, repairs only.",
        "- parking: Free parking behind the shop",
        "Conversation stage: Qualification",
        "- name: Ana",
        "- email: Address for the confirmation",
        "one or two of these at a time",
        "use pt-PT",
        "Tone: Relaxed",
        "never claim or pretend to be human",
        "Never invent facts",
        "passing the conversation to the team",
        "buttons",
    ]:
        assert fact in text, fact
    # Weekdays in calendar order, whatever order the JSON came back in.
    assert text.index("- mon: 09:00-18:00") < text.index("- tue: 10:00-19:00") < text.index("- sun: closed")


def test_response_generation_for_a_business_with_no_facts_offers_the_team_instead():
    text = rendered(TemplateKind.RESPONSE_GENERATION, bare_context())

    assert "No details are on file" in text
    assert "Conversation stage" not in text
    assert "Still needed" not in text
    assert "buttons" not in text


def test_response_generation_in_a_handoff_stage_tells_the_customer_a_person_will_reply():
    context = {**full_context(), "stage": HANDOFF_STAGE, "missing_fields": []}

    assert "a person will reply soon" in rendered(TemplateKind.RESPONSE_GENERATION, context)


def test_seeding_creates_one_platform_default_per_kind(db):
    results = platform_templates_seed()

    assert [r.action for r in results] == [SeedAction.CREATED] * 3
    templates = PromptTemplate.objects.filter(business__isnull=True)
    assert {(t.kind, t.is_default, t.version) for t in templates} == {
        (kind, True, 1) for kind in TemplateKind.values
    }
    for template in templates:
        assert template.content == DEFAULT_TEMPLATES[template.kind].content
        assert template_problems(kind=template.kind, content=template.content) == []


def test_seeding_again_keeps_everything_as_it_is(db):
    platform_templates_seed()
    before = list(PromptTemplate.objects.order_by("id").values("id", "content", "version", "updated_at"))
    history = PromptTemplate.history.count()

    results = platform_templates_seed()

    assert [r.action for r in results] == [SeedAction.KEPT] * 3
    assert (
        list(PromptTemplate.objects.order_by("id").values("id", "content", "version", "updated_at")) == before
    )
    assert PromptTemplate.history.count() == history


def test_an_operator_edit_survives_seeding_unless_forced(db):
    platform_templates_seed()
    template = PromptTemplate.objects.get(business=None, kind=TemplateKind.RESPONSE_GENERATION)
    template.content = "You are {{ agent.name }}."
    template.save()

    platform_templates_seed()
    template.refresh_from_db()
    assert template.content == "You are {{ agent.name }}."
    assert template.version == 1

    results = platform_templates_seed(force=True)
    template.refresh_from_db()
    assert template.content == DEFAULT_TEMPLATES[TemplateKind.RESPONSE_GENERATION].content
    assert template.version == 2
    actions = {r.template.kind: r.action for r in results}
    assert actions == {
        TemplateKind.STAGE_SELECTION: SeedAction.KEPT,
        TemplateKind.DATA_EXTRACTION: SeedAction.KEPT,
        TemplateKind.RESPONSE_GENERATION: SeedAction.UPDATED,
    }
    assert template.history.filter(version=2).exists()


def test_forcing_unchanged_defaults_does_not_bump_versions(db):
    platform_templates_seed()

    results = platform_templates_seed(force=True)

    assert [r.action for r in results] == [SeedAction.KEPT] * 3
    assert set(PromptTemplate.objects.values_list("version", flat=True)) == {1}


def test_seeding_adopts_a_platform_template_with_the_default_name_that_lost_its_flag(db):
    default = DEFAULT_TEMPLATES[TemplateKind.STAGE_SELECTION]
    orphan = PromptTemplate.objects.create(
        kind=default.kind, name=default.name, content="{{ handoff_key }}", is_default=False
    )

    platform_templates_seed()

    orphan.refresh_from_db()
    assert orphan.is_default
    assert orphan.content == "{{ handoff_key }}"
    assert PromptTemplate.objects.filter(business=None, kind=default.kind).count() == 1


def test_seeding_never_touches_business_templates(alice):
    before = PromptTemplate.objects.filter(business=alice.business).values("id", "content", "version")
    before = list(before)

    platform_templates_seed(force=True)

    after = PromptTemplate.objects.filter(business=alice.business).values("id", "content", "version")
    assert list(after) == before


def test_businesses_without_stages_get_the_default_initial_stage(alice):
    bare, _ = business_create(name="Stageless", owner_email="s@example.com")
    Stage.objects.filter(business=bare).delete()

    fixed = business_default_stages_ensure()

    assert fixed == [bare]
    assert Stage.objects.get(business=bare).is_initial
    assert Stage.objects.filter(business=alice.business).count() == 1
    assert business_default_stages_ensure() == []
