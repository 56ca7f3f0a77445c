"""The sandbox's limits on work, through the real doors: a template that would make a
worker build huge values or loop for seconds is refused at save time with a 400 naming
the limit, and one already stored fails fast in the preview and the playground.

Timings here are only a generous sanity bound: the limits count work, they never time it.
"""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django.urls import reverse
from jinja2 import StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates_app.defaults import DEFAULT_TEMPLATES
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.prompt_data import template_context_build
from templates_app.rendering import render, sample_context, template_problems
from tests.admin import admin_url, form_post_data

LIST = "/api/v1/templates/"
RESPONSE = TemplateKind.RESPONSE_GENERATION
# Far above what a refusal takes (milliseconds); an unbounded template takes seconds or never ends.
SANITY_SECONDS = 5

NESTED_LOOPS = "{% set s = '" + "x" * 12_000 + "' %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"

# A tuple of 150**4 ones, built from one (1,) * 150 reused at each level.
SHARED_TUPLE = "((((1,)*150,)*150,)*150,)*150"
SHARED = "{% set a = " + SHARED_TUPLE + " %}{% set b = " + SHARED_TUPLE + " %}"
# Two tuples of 8,100 items that differ only at the end, well within the value cap.
TWO_TUPLES = (
    "{% set t = ((1,)*90,)*90 %}{% set u = ((1,)*90,)*89 + ((2,)*90,) %}"
    "{% set pair = [t, u] %}{% set d = {t: 1} %}"
)

# Each payload of the probe, and the limit it goes over. The doublings stop at 2**22
# characters, so the unbounded sandbox finishes them too (and accepts them).
RUNAWAY = [
    pytest.param("{{ ('%20000000s' % 'x')|length }}", "number_size", id="percent-width"),
    pytest.param("{{ ('%s' * 9000) % (('y' * 9,) * 9000) }}", "value_size", id="percent-args"),
    pytest.param(
        "{% set ns = namespace(s='x') %}{% for i in range(22) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s|length }}",
        "value_size",
        id="tilde-doubling",
    ),
    pytest.param(
        "{% set ns = namespace(s='x') %}{% for i in range(22) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
        "{{ ns.s|length }}",
        "value_size",
        id="namespace-doubling",
    ),
    pytest.param(
        "{% set ns = namespace(s='x') %}{% for i in range(22) %}{% set ns.s %}{{ ns.s }}{{ ns.s }}"
        "{% endset %}{% endfor %}{{ ns.s|length }}",
        "value_size",
        id="set-block-doubling",
    ),
    pytest.param("{{ ('ab' * 40000)|length }}", "value_size", id="repeat"),
    pytest.param("{{ range(1000)|join('y' * 1000)|length }}", "value_size", id="join-range"),
    pytest.param("{{ '{0}{0}{0}{0}{0}'.format('x' * 20000)|length }}", "value_size", id="format-repeat"),
    pytest.param("{{ ('x\\n' * 3000)|indent('y' * 50, true)|length }}", "value_size", id="indent"),
    pytest.param("{{ [('x' * 50000)] * 1000 }}", "value_size", id="print-shared-list"),
    pytest.param(NESTED_LOOPS, "loop_iterations", id="nested-loops-12k"),
    pytest.param(
        "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
        "loop_iterations",
        id="nested-ranges",
    ),
    pytest.param(
        "{% set s = 'ab ' * 20000 %}{% for i in range(1000) %}{{ s|upper|length }}{% endfor %}",
        "render_work",
        id="work-in-a-loop",
    ),
    pytest.param(
        "{% set s = 'ab ' * 20000 %}{% for i in range(1000) %}{% if 'zz' in s %}!{% endif %}{% endfor %}",
        "render_work",
        id="search-in-a-loop",
    ),
    pytest.param("{{ 1" + " + 1" * 3000 + " }}", "template_tokens", id="tokens"),
    # Python refuses to read an integer of more than 4300 digits (a ValueError, once a 500).
    pytest.param("{{ " + "9" * 5000 + " }}", "number_size", id="long-integer-literal"),
    # Nested tuples that reuse one inner tuple: tiny to build, 150**4 items to hash or compare.
    pytest.param(
        "{% set t = ((((1,)*150,)*150,)*150,)*150 %}{% for i in range(3) %}{% set d = {t: i} %}"
        "{% endfor %}done",
        "value_size",
        id="shared-tuple-as-key",
    ),
    pytest.param(
        "{% set t = (" + ", ".join(["(" + ", ".join(["'x'"] * 40) + ")"] * 1) + ",) %}"
        "{% set u = (" + ", ".join(["t"] * 40) + ") %}{% set v = (" + ", ".join(["u"] * 40) + ") %}done",
        "value_size",
        id="shared-tuple-literals",
    ),
    pytest.param("{% set v = [[[[1] * 100] * 100] * 100] %}done", "value_size", id="shared-list-repeat"),
    pytest.param(SHARED + "{{ a == b }}", "value_size", id="shared-tuples-compared"),
    pytest.param("{{ [" + SHARED_TUPLE + "]|unique|list|length }}", "value_size", id="shared-tuple-unique"),
    # Values within the cap that hash or compare item by item: each use is charged by their full size.
    *(
        pytest.param(TWO_TUPLES + f"{{% for i in range(1000) %}}{body}{{% endfor %}}", "render_work", id=name)
        for name, body in [
            ("tuple-key-in-a-loop", "{% set d = {t: i} %}"),
            ("tuple-subscript-in-a-loop", "{{ {t: 1}[t] if i == 0 else d[t] }}"),
            ("loop-changed", "{% if loop.changed(t if i % 2 else u) %}{% endif %}"),
            ("unique-in-a-loop", "{{ pair|unique|list|length }}"),
            ("sort-in-a-loop", "{{ pair|sort|length }}"),
            ("count-in-a-loop", "{{ pair.count(u) }}"),
        ]
    ),
    pytest.param("{{ " + "(" * 400 + "1" + ")" * 400 + " }}", "nesting_depth", id="nesting"),
]


def _create(client, content: str):
    return client.post(LIST, {"kind": RESPONSE, "name": "Runaway", "content": content}, format="json")


@pytest.mark.parametrize(("content", "limit"), RUNAWAY)
def test_a_runaway_template_is_refused_at_save_with_a_400_naming_the_limit(alice, content, limit):
    started = time.monotonic()
    response = _create(alice.client(), content)

    assert time.monotonic() - started < SANITY_SECONDS
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == f"{limit}_limit"
    assert f"{limit} limit" in error["message"]
    assert error["details"]["content"]
    assert not PromptTemplate.objects.filter(name="Runaway").exists()


def test_an_update_to_a_runaway_template_is_refused_and_keeps_the_old_content(alice):
    response = alice.client().patch(f"{LIST}{alice.template.pk}/", {"content": NESTED_LOOPS}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "loop_iterations_limit"
    alice.template.refresh_from_db()
    assert alice.template.version == 1


def test_the_admin_form_refuses_a_runaway_template_naming_the_limit(alice, alice_editor):
    client = Client()
    client.force_login(alice_editor)
    page = client.get(admin_url(alice.template, "change"))

    started = time.monotonic()
    response = client.post(
        admin_url(alice.template, "change"), {**form_post_data(page), "content": NESTED_LOOPS}
    )

    assert time.monotonic() - started < SANITY_SECONDS
    assert response.status_code == 200  # the form again, with the error
    assert "loop_iterations limit" in response.content.decode()
    alice.template.refresh_from_db()
    assert alice.template.version == 1


@pytest.mark.parametrize(("content", "limit"), RUNAWAY)
def test_a_stored_runaway_template_fails_fast_in_the_preview_naming_the_limit(alice, content, limit):
    # Written straight to the database, as a template saved before the limits existed would be.
    stored = PromptTemplate.objects.create(
        business=alice.business, kind=RESPONSE, name="Old", content=content
    )

    started = time.monotonic()
    response = alice.client().post(f"{LIST}{stored.pk}/preview/", {}, format="json")

    assert time.monotonic() - started < SANITY_SECONDS
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == f"{limit}_limit"
    assert f"{limit} limit" in response.json()["error"]["message"]


def test_a_stored_runaway_template_fails_fast_in_the_playground_naming_the_limit(alice, alice_editor):
    stored = PromptTemplate.objects.create(
        business=alice.business, kind=RESPONSE, name="Old", content=NESTED_LOOPS
    )
    client = Client()
    client.force_login(alice_editor)
    url = reverse("admin:templates_app_prompttemplate_playground", args=[stored.pk])

    started = time.monotonic()
    response = client.post(url, {"sample_text": "Hi", "_render": "Render"})

    assert time.monotonic() - started < SANITY_SECONDS
    assert response.status_code == 200
    html = response.content.decode()
    assert "failed to render" in html
    assert "loop_iterations limit" in html


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{{ 'a\tb'.expandtabs(9000) * 1 }}{{ ('\t' * 9000).expandtabs(9000) }}", "value_size limit"),
        ("{{ 'abc'.translate({97: 'x' * 1000}) }}", "translate() is not available"),
        ("{{ [['x']] * 3|sum(start=[]) }}", "only add numbers"),
        ("{{ [[[['x' * 100] * 100]]]|tojson(indent=9000) }}", "value_size limit"),
        ("{{ ('x' * 30000)|wordwrap(1, wrapstring='yy') }}", "value_size limit"),
        ("{{ ','.join(['x' * 40000, 'y' * 40000]) }}", "value_size limit"),
        ("{{ '%(a)s%(a)s' % {'a': 'x' * 40000} }}", "value_size limit"),
        ("{{ (1).to_bytes(100000, 'big') }}", "to_bytes() is not available"),
        ("{{ (1).to_bytes(4, 'big') }}", "to_bytes() is not available"),
        # bytes.replace was unchecked, and encoding to punycode takes time quadratic in the text.
        (
            "{{ ('x' * 60000).encode().replace(''.encode(), ('y' * 60000).encode())|length }}",
            "encode() is not available",
        ),
        ("{{ 'abc'.encode('punycode')|length }}", "encode() is not available"),
        # A list counts at the size it prints as: 19,000 one-letter strings are 57,002 characters.
        ("{{ ('x' * 19000)|list|batch(1)|map('first')|map('upper')|join|length }}", "render_work limit"),
    ],
)
def test_every_way_to_grow_a_value_is_bounded(content, expected):
    problems = " ".join(str(p) for p in template_problems(kind=RESPONSE, content=content))

    assert expected in problems, problems


def test_a_value_at_the_limit_is_fine_and_one_past_it_is_refused():
    assert render(kind=RESPONSE, content="{{ ('x' * 60000)|length }}", context={}) == "60000"
    assert "value_size limit" in str(template_problems(kind=RESPONSE, content="{{ 'x' * 60001 }}"))


def _rich_context(kind: str) -> dict:
    stage = {
        "key": "booking",
        "name": "Booking",
        "description": "Book a table.",
        "is_handoff": False,
        "data_schema": {
            "type": "object",
            "properties": {"date": {"type": "string", "description": "Day of the booking."}},
            "required": ["date", "guests"],
        },
    }
    config = {
        "description": "A bakery by the river.",
        "website": "https://bakery.example",
        "timezone": "Europe/Lisbon",
        "language": "pt",
        "tone": "warm",
        "contact": {"phone": "+351 1", "email": "hi@bakery.example", "address": "Rua 1"},
        "opening_hours": {"mon": "8-18", "sat": "9-13"},
        "faq": [{"question": f"Question {i}?", "answer": "An answer. " * 30} for i in range(40)],
        "extra": {"parking": "yes", "wifi": "free"},
    }
    return template_context_build(
        kind=kind,
        business={"name": "Bakery", "config": config},
        agent={"name": "Ana", "persona": "Kind.", "instructions": "Be brief."},
        stage=stage,
        stages=[stage, {**stage, "key": "menu", "name": "Menu", "is_handoff": True}],
        collected_data={"guests": 2, "name": "Rui"},
        contact={"name": "Rui", "channel": "whatsapp"},
        quick_replies_allowed=True,
    )


@pytest.mark.parametrize("kind", list(DEFAULT_TEMPLATES))
def test_the_platform_defaults_render_exactly_as_jinja2s_own_sandbox_renders_them(kind):
    plain = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    content = DEFAULT_TEMPLATES[kind].content

    for context in (sample_context(kind), _rich_context(kind)):
        expected = plain.from_string(content).render(context).strip()
        assert render(kind=kind, content=content, context=context) == expected
    assert template_problems(kind=kind, content=content) == []
