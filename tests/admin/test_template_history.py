"""Template and stage history in the admin: versions with who and when, diffs, revert."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from conversations.models import LLMCall, LLMOutcome, LLMPurpose
from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind
from templates_app.services import template_create, template_update
from tests.admin import admin_url, form_post_data

pytestmark = pytest.mark.django_db

OLD_CONTENT = "You are {{ agent.name }} for {{ business.name }}."
NEW_CONTENT = "You are {{ agent.name }} for {{ business.name }}.\nAlways say <b>thanks</b>."


def login(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


def url(obj, view: str, *args) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=[obj.pk, *args])


def edit_template(client: Client, template: PromptTemplate, **changes) -> None:
    page = client.get(admin_url(template, "change"))
    data = {**form_post_data(page), **changes}
    response = client.post(admin_url(template, "change"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors


def history_ids(obj) -> list[int]:
    """Oldest first."""
    return list(obj.history.order_by("history_date", "history_id").values_list("history_id", flat=True))


# -- the history page -----------------------------------------------------------------


def test_the_history_lists_each_version_with_who_and_a_way_to_compare(alice, alice_editor):
    client = login(alice_editor)
    edit_template(client, alice.template, content=NEW_CONTENT)

    response = client.get(admin_url(alice.template, "history"))

    assert response.status_code == 200
    html = response.content.decode()
    _, second = history_ids(alice.template)
    assert html.count('name="from"') == 2
    assert f'value="{second}" form="icmp-compare"' in html
    assert "eve@example.com" in html  # who made the change
    changes_link = f"{url(alice.template, 'history_compare')}?to={second}"
    assert changes_link in html
    assert "<ins>+ Always say" in client.get(changes_link).content.decode()
    assert "calls of v2" in html and "calls of v1" in html
    assert url(alice.template, "playground") in html


def test_editing_the_content_through_the_admin_bumps_the_version(alice, alice_editor):
    edit_template(login(alice_editor), alice.template, content=NEW_CONTENT)

    alice.template.refresh_from_db()
    assert alice.template.version == 2
    assert alice.template.history.latest().history_user == alice_editor


# -- diffs ------------------------------------------------------------------------------


def test_the_diff_shows_removed_and_added_lines_escaped(alice, alice_editor):
    client = login(alice_editor)
    edit_template(client, alice.template, content=NEW_CONTENT, name="Warm reply")
    first, second = history_ids(alice.template)

    response = client.get(url(alice.template, "history_compare"), {"from": first, "to": second})

    assert response.status_code == 200
    html = response.content.decode()
    assert "<ins>+ Always say &lt;b&gt;thanks&lt;/b&gt;.</ins>" in html
    assert "<b>thanks</b>" not in html
    assert "<del>Friendly reply</del> → <ins>Warm reply</ins>" in html
    assert "<del>1</del> → <ins>2</ins>" in html  # the version


def test_the_diff_of_one_version_compares_it_with_the_one_before(alice, alice_editor):
    client = login(alice_editor)
    edit_template(client, alice.template, content=NEW_CONTENT)
    edit_template(client, alice.template, description="Now with a description")
    _, second, third = history_ids(alice.template)

    html = client.get(url(alice.template, "history_compare"), {"to": third}).content.decode()

    assert "<ins>+ Now with a description</ins>" in html
    assert "Always say" in html  # the content is shown, unchanged
    assert "<ins>+ Always say" not in html
    assert url(alice.template, "history_revert", second) in html


def test_picking_versions_in_either_order_shows_old_to_new(alice, alice_editor):
    client = login(alice_editor)
    edit_template(client, alice.template, content=NEW_CONTENT)
    first, second = history_ids(alice.template)

    html = client.get(url(alice.template, "history_compare"), {"from": second, "to": first}).content.decode()

    assert "<ins>+ Always say" in html


def test_an_unknown_or_malformed_version_in_a_diff_is_a_404(alice, bob, alice_editor):
    client = login(alice_editor)
    bobs_version = bob.template.history.latest().history_id

    assert client.get(url(alice.template, "history_compare"), {"to": "abc"}).status_code == 404
    assert client.get(url(alice.template, "history_compare"), {"to": bobs_version}).status_code == 404


# -- revert ---------------------------------------------------------------------------


def test_revert_restores_the_old_content_as_a_new_version(alice, alice_editor):
    client = login(alice_editor, enforce_csrf_checks=False)
    edit_template(client, alice.template, content=NEW_CONTENT, is_default="on")
    first, _ = history_ids(alice.template)

    response = client.post(url(alice.template, "history_revert", first))

    assert response.status_code == 302
    assert response["Location"] == admin_url(alice.template, "history")
    alice.template.refresh_from_db()
    assert alice.template.content == OLD_CONTENT
    assert alice.template.version == 3
    assert alice.template.is_default is False
    assert alice.template.history.count() == 3
    assert alice.template.history.latest().history_user == alice_editor
    history = client.get(admin_url(alice.template, "history")).content.decode()
    assert "Restored the version of" in history


def test_the_version_pages_revert_button_also_makes_a_new_version(alice, alice_editor):
    client = login(alice_editor)
    edit_template(client, alice.template, content=NEW_CONTENT)
    first, _ = history_ids(alice.template)
    version_url = url(alice.template, "simple_history", first)

    page = client.get(version_url)
    assert page.status_code == 200
    assert 'value="Revert"' in page.content.decode()
    # Whatever the form posts, the version is restored whole.
    response = client.post(version_url, {"content": "{{ nope }}"})

    assert response.status_code == 302
    alice.template.refresh_from_db()
    assert (alice.template.content, alice.template.version) == (OLD_CONTENT, 3)


def test_a_revert_needs_a_post_with_a_csrf_token(alice, alice_editor):
    template_update(template=alice.template, data={"content": NEW_CONTENT})
    first, _ = history_ids(alice.template)
    revert_url = url(alice.template, "history_revert", first)

    assert login(alice_editor).get(revert_url).status_code == 405
    assert login(alice_editor, enforce_csrf_checks=True).post(revert_url).status_code == 403
    alice.template.refresh_from_db()
    assert alice.template.version == 2


def test_a_viewer_reads_history_and_diffs_but_cannot_revert(alice, alice_viewer):
    template_update(template=alice.template, data={"content": NEW_CONTENT})
    first, second = history_ids(alice.template)
    client = login(alice_viewer)

    assert client.get(admin_url(alice.template, "history")).status_code == 200
    diff = client.get(url(alice.template, "history_compare"), {"to": second})
    assert diff.status_code == 200
    assert diff.context["may_revert"] is False
    assert 'name="_revert"' not in diff.content.decode()
    assert 'value="Revert"' not in client.get(url(alice.template, "simple_history", first)).content.decode()

    assert client.post(url(alice.template, "history_revert", first)).status_code == 403
    assert client.post(url(alice.template, "simple_history", first)).status_code == 403
    alice.template.refresh_from_db()
    assert alice.template.content == NEW_CONTENT


def test_platform_templates_cannot_be_reverted_by_tenants(alice, alice_editor):
    platform = template_create(
        business=None, kind=TemplateKind.RESPONSE_GENERATION, name="Platform", content=OLD_CONTENT
    )
    template_update(template=platform, data={"content": NEW_CONTENT})
    first, _ = history_ids(platform)
    client = login(alice_editor)

    assert client.get(url(platform, "history_compare")).status_code == 200
    assert client.post(url(platform, "history_revert", first)).status_code == 403


def test_a_revert_that_clashes_is_a_message_not_a_500(alice, alice_editor):
    template_update(template=alice.template, data={"name": "Renamed"})
    first, _ = history_ids(alice.template)
    template_create(
        business=alice.business,
        kind=TemplateKind.RESPONSE_GENERATION,
        name="Friendly reply",
        content=OLD_CONTENT,
    )
    client = login(alice_editor)

    response = client.post(url(alice.template, "history_revert", first), follow=True)

    assert response.status_code == 200
    assert "Not reverted" in response.content.decode()
    alice.template.refresh_from_db()
    assert alice.template.name == "Renamed"


def test_bobs_history_urls_answer_404_to_alices_editor(alice, bob, alice_editor):
    template_update(template=bob.template, data={"content": NEW_CONTENT})
    first, _ = history_ids(bob.template)
    client = login(alice_editor)

    for obj in (bob.template, bob.stage):
        version = obj.history.earliest().history_id
        assert client.get(url(obj, "history_compare")).status_code == 404
        assert client.post(url(obj, "history_revert", version)).status_code == 404
    # Bob's version id through Alice's object is not found either.
    assert client.post(url(alice.template, "history_revert", first)).status_code == 404
    bob.template.refresh_from_db()
    assert bob.template.content == NEW_CONTENT


# -- stages -----------------------------------------------------------------------------


def test_a_stage_revert_restores_its_schema_description_and_templates(alice, alice_editor):
    stage = alice.stage
    first = stage.history.latest().history_id
    client = login(alice_editor)
    page = client.get(admin_url(stage, "change"))
    data = {
        **form_post_data(page),
        "description": "Changed",
        "data_schema": '{"type": "object", "properties": {"name": {"type": "string"}}}',
        "response_template": str(alice.template.pk),
    }
    assert client.post(admin_url(stage, "change"), data).status_code == 302
    second = stage.history.latest().history_id
    history = client.get(admin_url(stage, "history")).content.decode()
    assert f'value="{second}" form="icmp-compare"' in history

    diff = client.get(url(stage, "history_compare"), {"from": first, "to": second}).content.decode()
    assert "<ins>+ Changed</ins>" in diff
    assert "<ins>+   &quot;properties&quot;: {</ins>" in diff

    assert client.post(url(stage, "history_revert", first)).status_code == 302
    stage.refresh_from_db()
    assert stage.data_schema == Stage.history.get(history_id=first).data_schema
    assert stage.response_template_id is None
    assert stage.description == Stage.history.get(history_id=first).description
    assert stage.history.count() == 3


# -- from a version to its LLM calls ----------------------------------------------------------


def test_a_version_page_links_to_the_llm_calls_of_that_version(alice, alice_editor):
    template = alice.template
    template_update(template=template, data={"content": NEW_CONTENT})
    newer = LLMCall.objects.create(
        business=alice.business,
        template=template,
        template_version=2,
        purpose=LLMPurpose.RESPONSE,
        model="gpt-4o-mini",
        outcome=LLMOutcome.OK,
    )
    first, _ = history_ids(template)
    client = login(alice_editor)

    page = client.get(url(template, "simple_history", first)).content.decode()
    calls_url = f"/admin/conversations/llmcall/?template__id__exact={template.pk}&amp;template_version=1"
    assert calls_url in page

    listing = client.get(calls_url.replace("&amp;", "&"))
    assert listing.status_code == 200
    html = listing.content.decode()
    assert admin_url(alice.llm_call, "change") in html
    assert admin_url(newer, "change") not in html
