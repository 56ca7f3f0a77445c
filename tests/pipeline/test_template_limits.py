"""A stored template that goes over a sandbox limit fails fast in a real turn: the
assistant answers with the built-in instructions, and the log names the limit."""

from __future__ import annotations

import logging
import time

from conversations.models import LLMCall, LLMPurpose
from conversations.pipeline.service import turn_run
from templates_app.models import PromptTemplate, TemplateKind

NESTED_LOOPS = "{% set s = '" + "x" * 12_000 + "' %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
SANITY_SECONDS = 5  # an unbounded render of this template takes seconds; the limit stops it in milliseconds


def test_a_turn_with_a_stored_runaway_template_answers_with_the_built_in_instructions(bakery, fake, caplog):
    # Written straight to the database, as a template saved before the limits existed would be.
    runaway = PromptTemplate.objects.create(
        business=bakery.tenant.business,
        kind=TemplateKind.RESPONSE_GENERATION,
        name="Runaway",
        content=NESTED_LOOPS,
    )
    bakery.general.response_template = runaway
    bakery.general.save()
    fake.on("selection", {"stage": "general"})
    fake.on("response", {"reply": "Hello! How can I help?", "quick_replies": []})
    message = bakery.say("Hi")

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="conversations.pipeline.prompts"):
        result = turn_run(conversation=bakery.conversation, messages=[message])

    assert time.monotonic() - started < SANITY_SECONDS
    assert result.reply_text == "Hello! How can I help?"
    system = fake.bodies("response")[-1]["messages"][0]["content"]
    assert "virtual assistant of" in system  # the built-in instructions
    call = LLMCall.objects.filter(conversation=bakery.conversation, purpose=LLMPurpose.RESPONSE).latest(
        "created_at"
    )
    assert call.template_id is None
    assert "loop_iterations limit" in caplog.text
