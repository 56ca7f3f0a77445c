"""Editing that helps: variables beside the content, errors that name the problem,
and the templates a stage inherits."""

from __future__ import annotations

import pytest
from django.test import Client

from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.rendering import VARIABLES
from templates_app.services import template_create
from tests.admin import admin_url, form_post_data

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_template(client: Client, template: PromptTemplate, content: str):
    page = client.get(admin_url(template, "change"))
    return client.post(admin_url(template, "change"), {**form_post_data(page), "content": content})


def test_the_template_form_lists_the_variables_of_its_kind(alice, alice_editor):
    html = login(alice_editor).get(admin_url(alice.template, "change")).content.decode()

    for name, description in VARIABLES[TemplateKind.RESPONSE_GENERATION].items():
        assert f"<code>{{{{ {name} }}}}</code>" in html
    assert "Required fields of the stage&#x27;s schema not collected yet." in html
    assert "handoff_key" not in html  # a stage-selection variable


def test_the_add_form_lists_the_variables_of_every_kind(alice, alice_editor):
    html = login(alice_editor).get(admin_url(PromptTemplate, "add")).content.decode()

    assert "<code>{{ handoff_key }}</code>" in html
    assert "<code>{{ schema }}</code>" in html
    assert "<code>{{ missing_fields }}</code>" in html


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ("Hello {{ customer_secret }}", "Unknown variable &#x27;customer_secret&#x27;"),
        ("Hello {{ agent.name ", "Syntax error"),
        ("{{ agent.__class__ }}", "Access to &#x27;__class__&#x27; is not allowed"),
        ("{% for i in range(100000) %}x{% endfor %}", "range() may produce at most"),
        ("{% include 'x.html' %}", "The {% include %} tag is not allowed"),
    ],
)
def test_saving_a_broken_template_shows_an_error_naming_the_problem(alice, alice_editor, content, named):
    response = post_template(login(alice_editor), alice.template, content)

    assert response.status_code == 200
    assert named in response.content.decode()
    alice.template.refresh_from_db()
    assert alice.template.version == 1


def test_saving_a_valid_template_bumps_the_version(alice, alice_editor):
    response = post_template(login(alice_editor), alice.template, "Hi from {{ business.name }}.")

    assert response.status_code == 302
    alice.template.refresh_from_db()
    assert (alice.template.content, alice.template.version) == ("Hi from {{ business.name }}.", 2)


def test_the_change_forms_link_to_the_playground(alice, alice_editor):
    client = login(alice_editor)

    template_page = client.get(admin_url(alice.template, "change")).content.decode()
    stage_page = client.get(admin_url(alice.stage, "change")).content.decode()

    assert f"/admin/templates_app/prompttemplate/{alice.template.pk}/playground/" in template_page
    assert f"/admin/stages/stage/{alice.stage.pk}/playground/" in stage_page


def test_the_stage_form_refuses_an_invalid_json_schema_naming_the_problem(alice, alice_editor):
    client = login(alice_editor)
    page = client.get(admin_url(alice.stage, "change"))
    data = {
        **form_post_data(page),
        "data_schema": '{"type": "object", "properties": {"a": {"type": "nope"}}}',
    }

    response = client.post(admin_url(alice.stage, "change"), data)

    assert response.status_code == 200
    assert "properties/a/type" in response.content.decode()


def test_the_stage_form_shows_which_templates_it_uses_and_where_they_come_from(alice, alice_editor):
    business_default = template_create(
        business=alice.business,
        kind=TemplateKind.STAGE_SELECTION,
        name="Our routing",
        content="Pick a stage of {{ business.name }}.",
        is_default=True,
    )
    platform_default = template_create(
        business=None,
        kind=TemplateKind.DATA_EXTRACTION,
        name="Platform extraction",
        content="Extract {{ schema | tojson }}.",
        is_default=True,
    )
    Stage.objects.filter(pk=alice.stage.pk).update(response_template=alice.template)

    html = login(alice_editor).get(admin_url(alice.stage, "change")).content.decode()

    assert "inherited: the business default" in html
    assert admin_url(business_default, "change") in html
    assert "inherited: the platform default" in html
    assert admin_url(platform_default, "change") in html
    assert "this stage&#x27;s own" in html
    assert admin_url(alice.template, "change") in html


def test_a_kind_with_no_template_anywhere_says_the_built_in_text_is_used(alice, alice_editor):
    html = login(alice_editor).get(admin_url(alice.stage, "change")).content.decode()

    assert "none: the built-in instructions" in html
