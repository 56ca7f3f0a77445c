"""The admin is every tenant's back office: each staff member sees only their businesses."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from businesses.models import Agent, APIKey, Business, Membership, Role
from businesses.services import api_key_authenticate, membership_add
from channels_app.models import ChannelAccount, WebhookEvent, WebhookEventPart
from conversations.models import (
    AIMode,
    Author,
    Contact,
    Conversation,
    Direction,
    Message,
    MessageStatus,
)
from stages.models import Stage
from templates_app.models import PromptTemplate, TemplateKind
from tests.admin import TENANT_MODELS, admin_url, form_post_data, objects_of

pytestmark = pytest.mark.django_db

MODEL_IDS = [m.__name__ for m in TENANT_MODELS]


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def world(alice, bob):
    return {"alice": objects_of(alice), "bob": objects_of(bob)}


@pytest.fixture
def platform_template(db):
    return PromptTemplate.objects.create(
        business=None,
        kind=TemplateKind.RESPONSE_GENERATION,
        name="Platform reply",
        content="Reply as {{ agent.name }}.",
    )


@pytest.fixture
def superuser(db):
    return get_user_model().objects.create_superuser("root@example.com", "root@example.com", "pw-root")


@pytest.fixture
def alice_owner_client(alice):
    return login(alice.owner)


# -- lists and object pages ------------------------------------------------------


@pytest.mark.parametrize("model", TENANT_MODELS, ids=MODEL_IDS)
def test_alices_editor_sees_alices_rows_and_none_of_bobs_on_every_changelist(world, alice_editor, model):
    response = login(alice_editor).get(admin_url(model, "changelist"))

    assert response.status_code == 200
    html = response.content.decode()
    assert admin_url(world["alice"][model], "change") in html
    assert admin_url(world["bob"][model], "change") not in html
    # Not even in a filter's choices or a column: Bob's name appears nowhere.
    assert "Bob" not in html


@pytest.mark.parametrize("model", TENANT_MODELS, ids=MODEL_IDS)
def test_bobs_object_urls_answer_404_to_alices_editor(world, alice_editor, model):
    client = login(alice_editor)
    bobs = world["bob"][model]

    for view in ("change", "history", "delete"):
        assert client.get(admin_url(bobs, view)).status_code == 404, view
    assert client.post(admin_url(bobs, "change"), {"name": "taken over"}).status_code == 404


@pytest.mark.parametrize("model", [Stage, PromptTemplate], ids=["Stage", "PromptTemplate"])
def test_bobs_versions_answer_404_to_alices_editor(world, alice_editor, model):
    bobs = world["bob"][model]
    version = bobs.history.latest("history_date")
    client = login(alice_editor)

    url = admin_url(model, "simple_history", bobs.pk, version.history_id)
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "reverted"}).status_code == 404


def test_staff_with_no_membership_are_refused_every_model_page(world, charlie):
    client = login(charlie)

    for model in TENANT_MODELS:
        alices = world["alice"][model]
        assert client.get(admin_url(model, "changelist")).status_code == 403, model
        assert client.get(admin_url(model, "add")).status_code == 403, model
        for view in ("change", "history", "delete"):
            assert client.get(admin_url(alices, view)).status_code == 403, (model, view)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert index.context["app_list"] == []


def test_a_member_of_a_business_sees_its_apps_on_the_index(alice, alice_viewer):
    response = login(alice_viewer).get("/admin/")

    labels = {app["app_label"] for app in response.context["app_list"]}
    assert {"businesses", "stages", "templates_app", "channels_app", "conversations"} <= labels
    assert "auth" not in labels


# -- viewers read, never write ---------------------------------------------------


@pytest.mark.parametrize("model", TENANT_MODELS, ids=MODEL_IDS)
def test_a_viewer_reads_lists_and_objects_without_an_add_button(world, alice_viewer, model):
    client = login(alice_viewer)
    alices = world["alice"][model]

    changelist = client.get(admin_url(model, "changelist"))
    assert changelist.status_code == 200
    assert changelist.context["has_add_permission"] is False
    assert admin_url(model, "add") not in changelist.content.decode()
    change = client.get(admin_url(alices, "change"))
    assert change.status_code == 200
    assert change.context["has_change_permission"] is False
    assert change.context["has_delete_permission"] is False


def test_a_viewer_cannot_post_changes(world, alice_viewer):
    client = login(alice_viewer)
    stage = world["alice"][Stage]

    for model, data in (
        (Stage, {"key": "hijack", "name": "Hijack"}),
        (Conversation, {"ai_mode": "paused"}),
        (Business, {"name": "Renamed"}),
    ):
        alices = world["alice"][model]
        assert client.post(admin_url(alices, "change"), data).status_code == 403, model
        assert client.post(admin_url(alices, "delete"), {"post": "yes"}).status_code == 403, model
    assert client.post(admin_url(Stage, "add"), {"key": "new", "name": "New"}).status_code == 403
    # simple_history's revert form only checks view rights by itself.
    version = stage.history.earliest("history_date")
    revert = admin_url(Stage, "simple_history", stage.pk, version.history_id)
    assert client.get(revert).status_code == 200
    assert client.post(revert, {"key": "reverted", "name": "Reverted", "order": "0"}).status_code == 403
    stage.refresh_from_db()
    assert stage.key == "general"
    assert Conversation.objects.get(pk=world["alice"][Conversation].pk).ai_mode == AIMode.AUTO


def test_editors_cannot_manage_keys_channels_secrets_or_settings(world, alice_editor):
    client = login(alice_editor)

    assert client.get(admin_url(APIKey, "add")).status_code == 403
    assert client.get(admin_url(ChannelAccount, "add")).status_code == 403
    settings = world["alice"][Business].ai_settings
    response = client.post(admin_url(settings, "change"), {"auto_reply_enabled": ""})
    assert response.status_code == 403
    assert client.post(admin_url(world["alice"][Business], "change"), {"name": "x"}).status_code == 403


# -- add forms and foreign keys ----------------------------------------------------


@pytest.mark.parametrize("model", [Stage, PromptTemplate, Agent], ids=lambda m: m.__name__)
def test_add_forms_offer_only_businesses_the_user_may_write(alice, bob, alice_editor, model):
    # A viewer's role elsewhere must not make that business writable.
    membership_add(business=bob.business, email=alice_editor.email, role=Role.VIEWER)

    response = login(alice_editor).get(admin_url(model, "add"))

    assert response.status_code == 200
    choices = list(response.context["adminform"].form.fields["business"].queryset)
    assert choices == [alice.business]


def test_an_add_form_posting_another_business_is_refused(alice, bob, alice_editor):
    response = login(alice_editor).post(
        admin_url(Stage, "add"),
        {
            "business": str(bob.business.pk),
            "key": "sneaky",
            "name": "Sneaky",
            "order": "0",
            "data_schema": "{}",
        },
    )

    assert response.status_code == 200
    assert "business" in response.context["adminform"].form.errors
    assert not Stage.objects.filter(key="sneaky").exists()


def test_an_add_form_for_the_users_business_creates_the_row(alice, alice_editor):
    response = login(alice_editor).post(
        admin_url(Stage, "add"),
        {
            "business": str(alice.business.pk),
            "key": "booking",
            "name": "Booking",
            "order": "1",
            "data_schema": json.dumps({"type": "object", "properties": {"date": {"type": "string"}}}),
            "response_template": str(alice.template.pk),
        },
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    stage = Stage.objects.get(business=alice.business, key="booking")
    assert stage.response_template == alice.template


def test_foreign_key_choices_exclude_the_other_tenants_rows(
    world, alice, bob, alice_editor, platform_template
):
    client = login(alice_editor)

    stage_form = client.get(admin_url(alice.stage, "change")).context["adminform"].form
    templates = set(stage_form.fields["response_template"].queryset)
    assert templates == {alice.template, platform_template}

    conversation_form = client.get(admin_url(alice.conversation, "change")).context["adminform"].form
    assert set(conversation_form.fields["stage"].queryset) == {alice.stage}

    owner = login(alice.owner)
    channel_form = owner.get(admin_url(alice.channel, "change")).context["adminform"].form
    assert set(channel_form.fields["agent"].queryset) == {world["alice"][Agent]}
    channel_add_form = owner.get(admin_url(ChannelAccount, "add")).context["adminform"].form
    assert set(channel_add_form.fields["agent"].queryset) == {world["alice"][Agent]}


def test_posting_another_tenants_template_or_stage_is_refused(alice, bob, alice_editor):
    client = login(alice_editor)
    page = client.get(admin_url(alice.stage, "change"))
    data = form_post_data(page) | {"response_template": str(bob.template.pk)}

    response = client.post(admin_url(alice.stage, "change"), data)

    assert response.status_code == 200
    assert "response_template" in response.context["adminform"].form.errors
    alice.stage.refresh_from_db()
    assert alice.stage.response_template_id is None

    page = client.get(admin_url(alice.conversation, "change"))
    response = client.post(
        admin_url(alice.conversation, "change"), form_post_data(page) | {"stage": str(bob.stage.pk)}
    )
    assert "stage" in response.context["adminform"].form.errors


def test_a_superuser_cannot_link_rows_of_two_tenants_either(alice, bob, superuser):
    client = login(superuser)
    page = client.get(admin_url(alice.stage, "change"))

    response = client.post(
        admin_url(alice.stage, "change"), form_post_data(page) | {"response_template": str(bob.template.pk)}
    )

    assert response.status_code == 200
    assert "response_template" in response.context["adminform"].form.errors


def test_an_add_form_cannot_link_rows_of_two_tenants(alice, bob, superuser):
    response = login(superuser).post(
        admin_url(Stage, "add"),
        {
            "business": str(alice.business.pk),
            "key": "mixed",
            "name": "Mixed",
            "order": "0",
            "data_schema": "{}",
            "response_template": str(bob.template.pk),
        },
    )

    assert response.status_code == 200
    assert "response_template" in response.context["adminform"].form.errors
    assert not Stage.objects.filter(key="mixed").exists()


def test_the_business_of_a_row_cannot_be_changed(alice, bob, superuser):
    client = login(superuser)
    page = client.get(admin_url(alice.stage, "change"))

    client.post(admin_url(alice.stage, "change"), form_post_data(page) | {"business": str(bob.business.pk)})

    alice.stage.refresh_from_db()
    assert alice.stage.business_id == alice.business.pk


def test_a_user_in_two_businesses_writes_only_where_their_role_allows(world, alice, bob, alice_editor):
    membership_add(business=bob.business, email=alice_editor.email, role=Role.VIEWER)
    client = login(alice_editor)

    listing = client.get(admin_url(Stage, "changelist")).content.decode()
    assert admin_url(bob.stage, "change") in listing
    assert client.get(admin_url(bob.stage, "change")).context["has_change_permission"] is False
    assert client.post(admin_url(bob.stage, "change"), {"key": "x", "name": "x"}).status_code == 403
    assert client.post(admin_url(bob.stage, "delete"), {"post": "yes"}).status_code == 403
    # Bulk delete from the list refuses the rows the user only views.
    client.post(
        admin_url(Stage, "changelist"),
        {"action": "delete_selected", "_selected_action": [str(bob.stage.pk)], "post": "yes"},
    )
    assert Stage.objects.filter(pk=bob.stage.pk).exists()


# -- platform templates ---------------------------------------------------------


def test_platform_templates_are_readable_but_read_only_for_tenants(alice, alice_editor, platform_template):
    client = login(alice_editor)

    listing = client.get(admin_url(PromptTemplate, "changelist")).content.decode()
    assert admin_url(platform_template, "change") in listing
    page = client.get(admin_url(platform_template, "change"))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    response = client.post(
        admin_url(platform_template, "change"),
        {"name": "Mine now", "content": "x", "kind": "response_generation"},
    )
    assert response.status_code == 403
    assert client.post(admin_url(platform_template, "delete"), {"post": "yes"}).status_code == 403
    platform_template.refresh_from_db()
    assert platform_template.name == "Platform reply"


def test_tenants_cannot_create_platform_templates(alice, alice_editor):
    response = login(alice_editor).post(
        admin_url(PromptTemplate, "add"),
        {"business": "", "kind": "response_generation", "name": "Sneaky default", "content": "Hi"},
    )

    assert response.status_code == 200
    assert "business" in response.context["adminform"].form.errors
    assert not PromptTemplate.objects.filter(name="Sneaky default").exists()


# -- secrets ---------------------------------------------------------------------

SECRET_VALUES = ("EAAG-secret-token-1065403522", "app-secret-1065403522")


def _assert_no_secret(html: str) -> None:
    for secret in SECRET_VALUES:
        assert secret not in html


def test_channel_secrets_never_appear_in_any_page(alice, superuser):
    ChannelAccount.objects.filter(pk=alice.channel.pk).update(verify_token="verify-me-1065403522")
    for user in (alice.owner, superuser):
        client = login(user)
        page = client.get(admin_url(alice.channel, "change"))
        assert page.status_code == 200
        # The form has the fields, write-only.
        assert 'name="access_token"' in page.content.decode()
        _assert_no_secret(page.content.decode())
        assert "verify-me-1065403522" not in page.content.decode()
        _assert_no_secret(client.get(admin_url(ChannelAccount, "changelist")).content.decode())

        response = client.post(admin_url(alice.channel, "change"), form_post_data(page) | {"name": "Renamed"})
        assert response.status_code == 302, response.context["adminform"].form.errors
        _assert_no_secret(client.get(admin_url(alice.channel, "history")).content.decode())
        _assert_no_secret(client.get(admin_url(alice.channel, "delete")).content.decode())

    channel = ChannelAccount.objects.get(pk=alice.channel.pk)
    # Empty inputs kept every secret.
    assert (channel.access_token, channel.app_secret, channel.verify_token) == (
        *SECRET_VALUES,
        "verify-me-1065403522",
    )


def test_an_owner_replaces_and_clears_secrets(alice, fake_graph):
    fake_graph.owns("EAAG-new-token", "whatsapp", alice.channel.external_id)
    client = login(alice.owner)
    page = client.get(admin_url(alice.channel, "change"))

    client.post(admin_url(alice.channel, "change"), form_post_data(page) | {"access_token": "EAAG-new-token"})
    channel = ChannelAccount.objects.get(pk=alice.channel.pk)
    assert channel.access_token == "EAAG-new-token"
    assert channel.app_secret == SECRET_VALUES[1]
    assert "EAAG-new-token" not in client.get(admin_url(alice.channel, "change")).content.decode()

    client.post(admin_url(alice.channel, "change"), form_post_data(page) | {"clear_secrets": ["app_secret"]})
    channel.refresh_from_db()
    assert channel.app_secret == ""
    assert channel.access_token == "EAAG-new-token"


def test_editors_see_whether_secrets_are_set_but_cannot_change_a_channel_account(alice, alice_editor):
    client = login(alice_editor)
    page = client.get(admin_url(alice.channel, "change"))
    html = page.content.decode()

    assert page.context["has_change_permission"] is False
    assert 'name="access_token"' not in html
    assert "access token: set" in html
    _assert_no_secret(html)
    # As in the API: the ids Meta routes by and the secrets are for owners and admins.
    for change in (
        {"external_id": "1065400001"},
        {"name": "Shop line"},
        {"access_token": "EAAG-editor", "clear_secrets": ["app_secret"]},
    ):
        response = client.post(admin_url(alice.channel, "change"), form_post_data(page) | change)
        assert response.status_code == 403
    channel = ChannelAccount.objects.get(pk=alice.channel.pk)
    assert (channel.external_id, channel.name) == ("1065403522", "Alice's Bakery WhatsApp")
    assert (channel.access_token, channel.app_secret) == SECRET_VALUES


def test_a_viewer_never_sees_secrets(alice, alice_viewer):
    html = login(alice_viewer).get(admin_url(alice.channel, "change")).content.decode()

    _assert_no_secret(html)
    assert "access token: set" in html


# -- API keys ----------------------------------------------------------------------


def test_an_owner_adds_an_api_key_and_sees_it_once(alice):
    client = login(alice.owner)

    response = client.post(
        admin_url(APIKey, "add"), {"business": str(alice.business.pk), "name": "Zapier"}, follow=True
    )

    assert response.status_code == 200
    raw_key = response.context["new_key"].raw_key
    assert raw_key in response.content.decode()
    api_key = api_key_authenticate(raw_key=raw_key)
    assert api_key is not None
    assert api_key.name == "Zapier"
    assert api_key.created_by == alice.owner
    page = client.get(admin_url(api_key, "change")).content.decode()
    assert raw_key not in page
    assert api_key.hashed_key not in page
    assert api_key.hashed_key not in client.get(admin_url(APIKey, "changelist")).content.decode()


def test_revoking_keys_from_the_list_calls_the_service(alice, bob):
    client = login(alice.owner)
    alices_key = APIKey.objects.get(business=alice.business)
    bobs_key = APIKey.objects.get(business=bob.business)

    client.post(
        admin_url(APIKey, "changelist"),
        {"action": "revoke", "_selected_action": [str(alices_key.pk), str(bobs_key.pk)]},
    )

    alices_key.refresh_from_db()
    bobs_key.refresh_from_db()
    assert alices_key.revoked_at is not None
    assert bobs_key.revoked_at is None
    assert api_key_authenticate(raw_key=alice.raw_key) is None


def test_an_editor_has_no_revoke_action(alice, alice_editor):
    client = login(alice_editor)
    key = APIKey.objects.get(business=alice.business)

    response = client.get(admin_url(APIKey, "changelist"))
    # Neither revoke (change) nor delete_selected (delete): no action menu at all.
    assert response.context["action_form"] is None
    client.post(admin_url(APIKey, "changelist"), {"action": "revoke", "_selected_action": [str(key.pk)]})
    key.refresh_from_db()
    assert key.revoked_at is None


# -- validation ----------------------------------------------------------------------


def test_business_config_is_validated_against_its_schema(alice):
    client = login(alice.owner)
    page = client.get(admin_url(alice.business, "change"))
    data = form_post_data(page) | {"config": json.dumps({"language": "English!", "colour": "red"})}

    response = client.post(admin_url(alice.business, "change"), data)

    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["config"])
    assert "language" in errors
    assert "colour" in errors
    data["config"] = json.dumps({"language": "en", "description": "Bread and cakes."})
    assert client.post(admin_url(alice.business, "change"), data).status_code == 302
    alice.business.refresh_from_db()
    assert alice.business.config == {"language": "en", "description": "Bread and cakes."}


def test_business_owner_and_slug_are_not_editable_by_tenants(alice, bob):
    client = login(alice.owner)
    page = client.get(admin_url(alice.business, "change"))
    data = form_post_data(page) | {"slug": "stolen", "owner": str(bob.owner.pk), "is_active": ""}

    client.post(admin_url(alice.business, "change"), data)

    business = Business.objects.get(pk=alice.business.pk)
    assert (business.owner_id, business.is_active) == (alice.owner.pk, True)
    assert business.slug != "stolen"


def test_an_owner_manages_members_of_their_business_only(alice, bob, alice_viewer):
    client = login(alice.owner)
    page = client.get(admin_url(alice.business, "change"))
    member_form = page.context["inline_admin_formsets"][0].formset.forms[0].fields["user"]
    assert bob.owner not in set(member_form.queryset)

    data = form_post_data(page)
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    viewer_row = next(
        i
        for i, form in enumerate(page.context["inline_admin_formsets"][0].formset.forms)
        if form.instance.user_id == alice_viewer.pk
    )
    data[f"{prefix}-{viewer_row}-role"] = Role.EDITOR
    assert client.post(admin_url(alice.business, "change"), data).status_code == 302
    assert Membership.objects.get(business=alice.business, user=alice_viewer).role == Role.EDITOR


def test_an_invalid_stage_schema_is_an_error_on_the_field(alice, alice_editor):
    client = login(alice_editor)
    page = client.get(admin_url(alice.stage, "change"))

    response = client.post(
        admin_url(alice.stage, "change"),
        form_post_data(page)
        | {"data_schema": json.dumps({"type": "object", "properties": {"a": {"type": 7}}})},
    )

    assert response.status_code == 200
    assert "data_schema" in response.context["adminform"].form.errors


def test_template_content_problems_are_named_and_content_changes_bump_the_version(alice, alice_editor):
    client = login(alice_editor)
    template = alice.template
    page = client.get(admin_url(template, "change"))
    data = form_post_data(page)

    bad = client.post(admin_url(template, "change"), data | {"content": "Hi {{ secret_sauce }}"})
    assert bad.status_code == 200
    assert "secret_sauce" in " ".join(bad.context["adminform"].form.errors["content"])

    assert client.post(admin_url(template, "change"), data | {"description": "Warm tone"}).status_code == 302
    template.refresh_from_db()
    assert template.version == 1
    assert (
        client.post(
            admin_url(template, "change"), data | {"content": "Hello from {{ business.name }}."}
        ).status_code
        == 302
    )
    template.refresh_from_db()
    assert (template.version, template.content) == (2, "Hello from {{ business.name }}.")
    assert template.history.count() == 3


# -- conversations -----------------------------------------------------------------


def test_the_transcript_escapes_customer_text(alice, alice_editor):
    Message.objects.create(
        business=alice.business,
        conversation=alice.conversation,
        channel_account=alice.channel,
        direction=Direction.IN,
        author=Author.CUSTOMER,
        text="<script>alert('pwned')</script>",
        status=MessageStatus.RECEIVED,
    )

    html = login(alice_editor).get(admin_url(alice.conversation, "change")).content.decode()

    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html
    assert "Hi! How can I help?" in html


def test_staff_change_only_the_control_fields_of_a_conversation(alice, alice_editor):
    client = login(alice_editor)
    conversation = alice.conversation
    page = client.get(admin_url(conversation, "change"))
    assert set(page.context["adminform"].form.fields) == {
        "ai_mode",
        "needs_human",
        "handoff_reason",
        "status",
        "stage",
    }

    response = client.post(
        admin_url(conversation, "change"),
        form_post_data(page)
        | {"ai_mode": "paused", "handoff_reason": "Refund request", "collected_data": "{}"},
    )

    assert response.status_code == 302
    conversation.refresh_from_db()
    assert (conversation.ai_mode, conversation.handoff_reason) == (AIMode.PAUSED, "Refund request")


def test_pause_and_resume_actions_touch_only_writable_conversations(alice, bob, alice_editor):
    client = login(alice_editor)
    ids = [str(alice.conversation.pk), str(bob.conversation.pk)]

    client.post(admin_url(Conversation, "changelist"), {"action": "pause_ai", "_selected_action": ids})
    assert Conversation.objects.get(pk=alice.conversation.pk).ai_mode == AIMode.PAUSED
    assert Conversation.objects.get(pk=bob.conversation.pk).ai_mode == AIMode.AUTO

    Conversation.objects.filter(pk=alice.conversation.pk).update(needs_human=True)
    client.post(admin_url(Conversation, "changelist"), {"action": "resume_ai", "_selected_action": ids})
    conversation = Conversation.objects.get(pk=alice.conversation.pk)
    assert (conversation.ai_mode, conversation.needs_human) == (AIMode.AUTO, False)


def test_records_of_the_system_are_read_only_even_for_superusers(world, superuser):
    client = login(superuser)

    for model in (Message, WebhookEventPart):
        obj = world["alice"][model]
        assert client.get(admin_url(model, "add")).status_code == 403
        page = client.get(admin_url(obj, "change"))
        assert page.status_code == 200
        assert page.context["has_change_permission"] is False
        assert (
            client.post(admin_url(obj, "change"), {"text": "rewritten", "status": "failed"}).status_code
            == 403
        )


def test_raw_webhook_events_are_for_superusers_only(world, alice, alice_owner_client, superuser):
    for event in (
        WebhookEvent.objects.create(channel="whatsapp", body="{}", status="unrouted"),
        world["alice"][WebhookEventPart].event,  # even one whose items are all Alice's
    ):
        for view in ("change", "history", "delete"):
            assert alice_owner_client.get(admin_url(event, view)).status_code == 403, view
        assert login(superuser).get(admin_url(event, "change")).status_code == 200
        assert not login(superuser).get(admin_url(event, "change")).context["has_change_permission"]
    assert alice_owner_client.get(admin_url(WebhookEvent, "changelist")).status_code == 403


def test_the_default_agent_cannot_be_deleted(alice):
    agent = Agent.objects.get(business=alice.business, is_default=True)

    assert login(alice.owner).post(admin_url(agent, "delete"), {"post": "yes"}).status_code == 403
    assert Agent.objects.filter(pk=agent.pk).exists()


def test_staff_rename_a_contact(alice, alice_editor):
    client = login(alice_editor)
    page = client.get(admin_url(alice.contact, "change"))

    response = client.post(admin_url(alice.contact, "change"), form_post_data(page) | {"name": "Maria"})

    assert response.status_code == 302
    assert Contact.objects.get(pk=alice.contact.pk).name == "Maria"
