"""The back office in a real browser: what a business editor does in the admin.

Issue 5's acceptance: log in, edit a template (a bad variable is refused on the
form, a good change is saved), see it in the history with a diff, revert,
preview and dry-run in the playground, pause the AI and answer a customer by
hand, and find nothing of another tenant. Assertions read what is on the page.
"""

from __future__ import annotations

import re
import time

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips (or, in CI, fails) with the reason
    expect = None

from django.utils import timezone

from conversations.models import AIMode, Author, Conversation, LLMCall, MessageStatus

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOT_FOUND = re.compile(r"Not Found", re.IGNORECASE)
# The content tests/conftest.py gives every tenant's template.
ORIGINAL_CONTENT = "You are {{ agent.name }} for {{ business.name }}."


def wait_for(probe, timeout: float = 5.0):
    """probe() once it is truthy (work the live server finishes after answering)."""
    deadline = time.monotonic() + timeout
    while not (result := probe()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return result


def template_url(template, suffix: str = "") -> str:
    return f"/admin/templates_app/prompttemplate/{template.pk}/change/{suffix}"


def save(page) -> None:
    page.locator("input[name=_continue]").click()


def test_a_business_editor_logs_in_through_the_admin_login_page(page, alice_editor, screenshot):
    page.goto("/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.fill("#id_username", "eve@example.com")
    page.fill("#id_password", "wrong password")
    page.locator("input[type=submit]").click()
    expect(page.locator(".errornote")).to_contain_text("correct username and password")

    page.fill("#id_username", "eve@example.com")
    page.fill("#id_password", "pw-eve")
    page.locator("input[type=submit]").click()

    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.locator("#site-name")).to_contain_text("ICMP back office")
    expect(page.locator("#content")).to_contain_text("Prompt templates")
    expect(page.locator("#content")).to_contain_text("Conversations")
    # Platform administration is not an editor's business.
    expect(page.locator("#content")).not_to_contain_text("Groups")
    screenshot(page, "admin-index")


def test_an_editor_is_refused_an_unknown_variable_saves_a_change_sees_its_diff_and_reverts_it(
    page, alice, alice_editor, login_as, screenshot
):
    template = alice.template
    assert template.content == ORIGINAL_CONTENT
    version_before = template.version
    login_as(alice_editor)

    page.goto(template_url(template))
    expect(page.locator("#content h1, #content h2").first).to_be_visible()
    # The form lists what a template of this kind may use.
    expect(page.locator(".field-available_variables")).to_contain_text("business")

    page.fill("#id_content", "Hello {{ customer.shoe_size }} from {{ secret_sauce }}.")
    save(page)
    error = page.locator(".field-content .errorlist")
    expect(error).to_contain_text("Unknown variable 'secret_sauce'")
    expect(page.locator(".errornote")).to_be_visible()
    screenshot(page, "template-form-error")
    template.refresh_from_db()
    assert template.version == version_before
    assert "secret_sauce" not in template.content

    page.fill("#id_content", "You are {{ agent.name }} for {{ business.name }}. Keep answers short.")
    save(page)
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    expect(page.locator("#id_content")).to_have_value(
        "You are {{ agent.name }} for {{ business.name }}. Keep answers short."
    )
    template.refresh_from_db()
    assert template.content.endswith("Keep answers short.")
    assert template.version == version_before + 1

    page.locator("a.historylink").click()
    expect(page).to_have_url(re.compile(r"/history/$"))
    history = page.locator("#content")
    expect(history).to_contain_text("Change history")
    expect(history).to_contain_text("eve@example.com")
    screenshot(page, "history")

    # The diff between the two versions (newest first): the old line removed, the new one added.
    expect(page.locator("input[name=from]")).to_have_count(2)
    page.locator("input[name=from]").nth(1).check()
    page.locator("input[name=to]").nth(0).check()
    page.get_by_role("button", name="Compare the selected versions").click()
    content_change = page.locator("#icmp-changes tr").filter(
        has=page.locator("th", has_text=re.compile(r"^\s*content\s*$"))
    )
    expect(content_change.locator("del")).to_have_text(f"- {ORIGINAL_CONTENT}")
    expect(content_change.locator("ins")).to_have_text(f"+ {ORIGINAL_CONTENT} Keep answers short.")
    expect(page.locator("#content-main")).to_contain_text("eve@example.com")
    screenshot(page, "history-diff")

    # One click brings the old text back, as a new version.
    page.locator("input[name=_revert]").click()
    expect(page).to_have_url(re.compile(r"/history/$"))
    expect(page.locator(".messagelist")).to_contain_text("Restored the version of")
    screenshot(page, "history-after-revert")
    template.refresh_from_db()
    assert template.content == ORIGINAL_CONTENT
    assert template.version == version_before + 2
    assert template.history.count() == 3

    page.goto(template_url(template))
    expect(page.locator("#id_content")).to_have_value(ORIGINAL_CONTENT)


def test_another_tenants_pages_answer_not_found(page, alice, bob, alice_editor, login_as, screenshot):
    login_as(alice_editor)

    # Alice's own pages open...
    response = page.goto(template_url(alice.template))
    assert response.status == 200
    expect(page.locator("#id_content")).to_have_value(alice.template.content)

    # ...Bob's answer 404 with nothing of his on the page.
    bobs_pages = [
        template_url(bob.template),
        f"/admin/templates_app/prompttemplate/{bob.template.pk}/history/",
        f"/admin/conversations/conversation/{bob.conversation.pk}/change/",
        f"/admin/stages/stage/{bob.stage.pk}/change/",
        f"/admin/businesses/business/{bob.business.pk}/usage/",
    ]
    for url in bobs_pages:
        response = page.goto(url)
        assert response.status == 404, url
        expect(page.locator("body")).to_contain_text(NOT_FOUND)
        expect(page.locator("body")).not_to_contain_text("Bob")
    screenshot(page, "not-found")

    # Lists hold nothing of Bob's either (both tenants' rows have the same names: links tell).
    page.goto("/admin/templates_app/prompttemplate/")
    templates = page.locator("#result_list")
    expect(templates.get_by_role("link", name=alice.template.name)).to_have_attribute(
        "href", re.compile(str(alice.template.pk))
    )
    expect(templates.locator(f'a[href*="{bob.template.pk}"]')).to_have_count(0)
    expect(templates).not_to_contain_text("Bob's Garage")
    page.goto("/admin/conversations/conversation/")
    inbox = page.locator("#result_list tbody tr")
    expect(inbox).to_have_count(1)
    expect(inbox.get_by_role("link", name="Customer")).to_have_attribute(
        "href", re.compile(str(alice.conversation.pk))
    )
    expect(page.locator("#content")).not_to_contain_text("Bob's Garage")


def test_the_playground_shows_the_prompt_and_a_dry_run_against_the_fake_llm(
    page, alice, alice_editor, login_as, fake_llm, screenshot
):
    fake_llm.on("response", {"reply": "Fresh croissants until noon!", "quick_replies": []})
    conversation = alice.conversation
    messages_before = conversation.messages.count()
    login_as(alice_editor)

    page.goto(template_url(alice.template))
    page.locator(".object-tools").get_by_role("link", name="Playground").click()
    expect(page.locator("#content-main")).to_contain_text("A dry run asks the model but sends nothing")
    page.select_option("#id_conversation", str(conversation.pk))
    page.locator("input[name=_dry_run]").click()

    dry_run = page.locator("#icmp-dry-run")
    expect(dry_run.locator(".icmp-reply")).to_have_text("Fresh croissants until noon!")
    expect(dry_run).to_contain_text("Tokens")
    expect(dry_run.locator("#icmp-tokens")).to_contain_text(re.compile(r"[1-9]\d* prompt"))
    # The template under preview, rendered with Alice's business.
    expect(page.locator("#icmp-prompts")).to_contain_text("for Alice's Bakery.")
    screenshot(page, "playground-result")

    # The model was asked, through the real client, with the rendered prompt...
    bodies = fake_llm.bodies("response")
    assert bodies, fake_llm.purposes()
    assert "for Alice's Bakery." in str(bodies[-1]["messages"])
    # ...the calls are in the ledger as a dry run, and the conversation is untouched.
    assert LLMCall.objects.filter(business=alice.business, dry_run=True).exists()
    conversation.refresh_from_db()
    assert conversation.messages.count() == messages_before
    assert not conversation.messages.filter(text="Fresh croissants until noon!").exists()


def test_staff_pause_the_ai_and_their_reply_reaches_the_fake_graph_api(
    page, alice, alice_editor, login_as, fake_graph, screenshot
):
    conversation = alice.conversation
    # The customer wrote a minute ago: WhatsApp's 24-hour window is open.
    Conversation.objects.filter(pk=conversation.pk).update(
        last_inbound_at=timezone.now() - timezone.timedelta(minutes=1), last_message_at=timezone.now()
    )
    reply = "A person here: your <b>cake</b> is ready at 4 pm."
    login_as(alice_editor)

    page.goto("/admin/conversations/conversation/")
    inbox = page.locator("#result_list")
    expect(inbox).to_contain_text("Customer")
    expect(inbox).to_contain_text("Hi! How can I help?")
    screenshot(page, "inbox")

    inbox.get_by_role("link", name="Customer").click()
    summary = page.locator("#conversation-summary")
    expect(summary).to_contain_text("answering")
    transcript = page.locator("#conversation-transcript")
    expect(transcript).to_contain_text("Hello")
    expect(transcript).to_contain_text("Hi! How can I help?")
    screenshot(page, "conversation")

    page.locator("#conversation-actions input[name=pause]").click()
    expect(page.locator(".messagelist")).to_contain_text("AI paused")
    expect(page.locator("#conversation-summary")).to_contain_text("paused")
    expect(page.locator("#conversation-actions input[name=resume]")).to_be_visible()
    conversation.refresh_from_db()
    assert conversation.ai_mode == AIMode.PAUSED

    page.locator("#conversation-actions textarea[name=text]").fill(reply)
    page.locator("#conversation-actions input[name=reply]").click()
    expect(page.locator(".messagelist")).to_contain_text("Reply queued")
    # Shown as text, escaped: no <b> element made from what staff typed.
    staff_row = page.locator("#conversation-transcript tr", has_text="your <b>cake</b> is ready")
    expect(staff_row).to_contain_text("Staff")
    expect(staff_row).to_contain_text("eve@example.com")
    assert page.locator("#conversation-transcript b", has_text="cake").count() == 0
    screenshot(page, "conversation-after-reply")

    # The send runs after commit, in the request: Meta's (fake) API got the text.
    sent = wait_for(
        lambda: [r for r in fake_graph.requests if r.method == "POST" and r.path.endswith("/messages")]
    )
    assert len(sent) == 1, fake_graph.requests
    request = sent[0]
    assert request.path == f"/v25.0/{alice.channel.external_id}/messages"
    assert request.headers.get("Authorization") == f"Bearer {alice.channel.access_token}"
    assert request.body["to"] == alice.contact.external_id
    assert request.body["text"]["body"] == reply
    message = conversation.messages.get(author=Author.STAFF)
    assert message.text == reply
    assert message.status == MessageStatus.SENT
    assert message.sent_by == alice_editor
    conversation.refresh_from_db()
    assert conversation.ai_mode == AIMode.PAUSED


def test_the_usage_page_shows_the_business_figures_as_a_chart_and_a_table(
    page, alice, alice_editor, login_as, screenshot
):
    login_as(alice_editor)

    page.goto("/admin/businesses/business/")
    page.locator("#result_list").get_by_role("link", name="Usage").click()
    expect(page.locator("#content h1")).to_contain_text("Usage of Alice's Bakery")
    expect(page.locator("svg.usage-svg").first).to_be_visible()
    # The fixture's day: one message in, one out, one LLM call of 120 + 12 tokens.
    totals = page.locator("#usage-totals td")
    expect(totals.nth(0)).to_have_text("total")
    expect(totals.nth(1)).to_have_text("1")
    expect(totals.nth(2)).to_have_text("1")
    expect(totals.nth(5)).to_have_text("1")
    expect(totals.nth(6)).to_have_text("120")
    expect(totals.nth(7)).to_have_text("12")
    expect(page.locator("#usage-stages")).to_contain_text(alice.stage.name)
    screenshot(page, "usage")
