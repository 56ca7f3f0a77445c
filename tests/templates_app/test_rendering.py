"""The template sandbox: what is refused at save time, and what render() raises."""

from __future__ import annotations

import pytest

from templates_app.models import TemplateKind
from templates_app.prompt_data import template_context_build
from templates_app.rendering import (
    MAX_RENDERED_CHARS,
    VARIABLES,
    TemplateRenderError,
    render,
    sample_context,
    template_problems,
)

RESPONSE = TemplateKind.RESPONSE_GENERATION


def _problems(content: str, kind: str = RESPONSE) -> list[str]:
    return [str(p) for p in template_problems(kind=kind, content=content)]


def _render(content: str, kind: str = RESPONSE, **context) -> str:
    return render(kind=kind, content=content, context={**sample_context(kind), **context})


def test_a_plain_template_has_no_problems_and_renders():
    content = (
        "{{ agent.name }} for {{ business.name }}.\n"
        "{% for s in stages %}- {{ s.key }}{% if not loop.last %}\n{% endif %}{% endfor %}\n"
        "{{ business.config.get('description', '') }} {{ '%.1f'|format(2.25) }} {{ collected_data|tojson }}"
    )

    assert _problems(content) == []
    assert _render(content) == 'Assistant for Sample business.\n- greeting\nSample 2.2 {"name": "Ana"}'


def test_each_kind_has_its_own_variables():
    assert _problems("{{ handoff_key }}", TemplateKind.STAGE_SELECTION) == []
    assert _problems("{{ schema }}", TemplateKind.DATA_EXTRACTION) == []
    assert "Unknown variable 'handoff_key'" in _problems("{{ handoff_key }}")[0]
    assert "Unknown variable 'schema'" in _problems("{{ schema }}", TemplateKind.STAGE_SELECTION)[0]


def test_an_unknown_kind_is_a_problem_and_a_render_error():
    assert _problems("hi", "small_talk") == ["Unknown template kind 'small_talk'."]
    with pytest.raises(TemplateRenderError):
        render(kind="small_talk", content="hi", context={})


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{{ ''.__class__.__mro__ }}", "'__class__' is not allowed"),
        ("{{ business.__class__ }}", "'__class__' is not allowed"),
        ("{{ business|attr('__class__') }}", "attr filter"),
        ("{% if false %}{{ stages|attr('__init__') }}{% endif %}", "attr filter"),
        ("{{ business['__class__'] }}", "'__class__' is not allowed"),
        ("{{ stages.append(1) }}", "unsafe"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macro"),
        ("{% include 'other' %}", "include"),
        ("{% extends 'base' %}", "extends"),
        ("{% import 'm' as m %}", "import"),
        ("{% for s in stages recursive %}{{ loop(s) }}{% endfor %}", "Recursive loops"),
        (
            "{% for a in range(3) %}{% for b in range(3) %}{% for c in range(3) %}{% endfor %}"
            "{% endfor %}{% endfor %}",
            "nested at most 2",
        ),
        ("{{ range(100000)|length }}", "at most 1000 items"),
        ("{{ 'x' * 100000000 }}", "value_size limit"),
        ("{{ stages * 100000000 }}", "value_size limit"),
        ("{{ 2 ** 100000 }}", "number_size limit"),
        ("{{ 'a'|center(100000000) }}", "may not exceed"),
        ("{{ 'a'.ljust(100000000) }}", "may not exceed"),
        ("{{ '%0100000000d'|format(1) }}", "number_size limit"),
        ("{{ '{:>100000000}'.format(1) }}", "number_size limit"),
        ("{{ '{:>{}}'.format(1, 100000000) }}", "number_size limit"),
        ("{{ ('a' * 50000)|replace('a', 'aaaa') }}", "value_size limit"),
        ("{{ lipsum(1000) }}", "Unknown variable 'lipsum'"),
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ business.name }", "line 1: Syntax error"),
    ],
)
def test_escapes_and_runaway_work_are_refused_at_save_time(content, expected):
    problems = _problems(content)

    assert problems, content
    assert expected in " ".join(problems)


@pytest.mark.parametrize(
    "content",
    [
        "{{ business|attr('__class__') }}",
        "{{ business['__class__'] }}",
        "{{ business.__class__.__mro__ }}",
        "{{ stages.append(1) }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
        "{{ range(100000)|list }}",
        "{{ 'x' * 100000000 }}",
        "{{ 2 ** 100000 }}",
        "{{ '{:>100000000}'.format(1) }}",
        "{{ 1 / 0 }}",
        "{{ nothing_here }}",
        "{{ business.name }",
        "{{ stage.missing_attribute }}",
    ],
)
def test_render_raises_only_template_render_errors(content):
    # The pipeline renders stored templates; whatever is wrong with one must be a
    # TemplateRenderError it can record, never a SecurityError, RecursionError or 500.
    with pytest.raises(TemplateRenderError):
        _render(content)


def test_render_output_is_capped():
    content = "{% for a in range(1000) %}{{ 'x' * 100 }}{% endfor %}"

    assert _problems(content)  # caught at save time on the sample data
    with pytest.raises(TemplateRenderError, match=str(MAX_RENDERED_CHARS)):
        _render(content)


def test_render_gives_a_template_only_its_kinds_variables():
    with pytest.raises(TemplateRenderError, match="handoff_key"):
        render(
            kind=RESPONSE, content="{{ handoff_key }}", context=sample_context(TemplateKind.STAGE_SELECTION)
        )


def test_given_data_cannot_be_changed_by_a_template():
    context = sample_context(RESPONSE)

    with pytest.raises(TemplateRenderError):
        render(kind=RESPONSE, content="{{ collected_data.update({'x': 1}) }}", context=context)
    assert context["collected_data"] == {"name": "Ana"}


def test_large_numbers_in_the_data_are_fine():
    rendered = _render(
        "{{ collected_data.budget|string }} {{ collected_data.budget + 1 }} "
        "{{ '{:,}'.format(collected_data.budget) }}",
        collected_data={"budget": 123456789},
    )

    assert rendered == "123456789 123456790 123,456,789"


def test_a_format_string_with_long_numbers_is_not_a_wide_format():
    assert _render("{{ 'Call 555123456 about %s'|format(business.name) }}") == (
        "Call 555123456 about Sample business"
    )


def test_the_sample_context_holds_exactly_each_kinds_variables():
    for kind, variables in VARIABLES.items():
        assert set(sample_context(kind)) == set(variables)


def test_the_context_builder_gives_each_kind_its_variables_from_plain_data():
    stage = {
        "key": "booking",
        "name": "Booking",
        "description": "Book a table.",
        "is_handoff": False,
        "data_schema": {"type": "object", "required": ["date", "guests"]},
    }

    context = template_context_build(
        kind=RESPONSE,
        business={"name": "Bakery", "config": {}},
        agent={"name": "Ana", "persona": "", "instructions": ""},
        stage=stage,
        stages=[stage],
        collected_data={"guests": 2, "date": ""},
        contact={"name": "Rui", "channel": "whatsapp"},
        quick_replies_allowed=True,
    )

    assert set(context) == set(VARIABLES[RESPONSE])
    assert context["missing_fields"] == ["date"]
    assert context["stages"] == [{k: stage[k] for k in ("key", "name", "description", "is_handoff")}]
    extraction = template_context_build(
        kind=TemplateKind.DATA_EXTRACTION,
        business={"name": "Bakery", "config": {}},
        agent=None,
        stage=stage,
        stages=[stage],
    )
    assert extraction["schema"] == stage["data_schema"]
    assert extraction["contact"] == {"name": "", "channel": ""}
    assert set(extraction) == set(VARIABLES[TemplateKind.DATA_EXTRACTION])
