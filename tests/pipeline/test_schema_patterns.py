"""The patterns of a stage's schema run on RE2 when the pipeline validates model output:
time linear in the answer, whatever the pattern."""

from __future__ import annotations

import time

from conversations.models import LLMCall, LLMOutcome
from conversations.pipeline.service import turn_run
from stages.models import Stage

# Accepted at save (no nested quantifier, no overlapping alternatives), yet Python's
# backtracking re needs time quadratic in a run of digits with no "x" after it.
PATTERN = "^[0-9]*[0-9]*x$"
ANSWER = "1" * 100_000
SANITY_SECONDS = 5  # RE2 takes about a millisecond; Python's re takes minutes


def test_model_output_of_100_kb_is_validated_against_a_pattern_in_linear_time(bakery, fake):
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": PATTERN}}}
    created = bakery.tenant.client().post(
        "/api/v1/stages/", {"key": "codes", "name": "Codes", "data_schema": schema}, format="json"
    )
    assert created.status_code == 201, created.content
    conversation = bakery.conversation
    conversation.stage = Stage.objects.get(pk=created.json()["id"])
    conversation.save(update_fields=["stage"])
    fake.on("selection", {"stage": "codes"})
    fake.on("extraction", {"code": ANSWER}, {"code": ANSWER})

    started = time.monotonic()
    result = turn_run(conversation=conversation, messages=[bakery.say("My code is 111…")])

    assert time.monotonic() - started < SANITY_SECONDS
    assert result.extracted == {}
    extraction = LLMCall.objects.get(conversation=conversation, purpose="extraction", dry_run=False)
    assert extraction.outcome == LLMOutcome.INVALID
    assert "code: must satisfy pattern" in extraction.error
