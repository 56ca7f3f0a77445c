"""The patterns of a stage's schema run on RE2 when the pipeline validates model output:
time linear in the answer, whatever the pattern."""

from __future__ import annotations

import time

import pytest

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


@pytest.mark.parametrize(
    ("answer", "valid"),
    [
        # Python's re raised OverflowError and RecursionError on these, crashing the turn;
        # RE2, which runs the project's patterns, reads the first as a literal "{…}".
        pytest.param("a{4294967296}", True, id="repeat-overflows-re"),
        pytest.param("(?:" * 1000 + "a" + ")" * 1000, True, id="nested-1000-deep"),
        pytest.param("(a+)+$", True, id="catastrophic-but-only-compiled"),
        pytest.param("a(", False, id="not-a-regex"),
    ],
)
def test_a_regex_format_in_the_answer_is_checked_by_re2_and_never_breaks_the_turn(
    bakery, fake, answer, valid
):
    schema = {"type": "object", "properties": {"p": {"type": "string", "format": "regex"}}}
    created = bakery.tenant.client().post(
        "/api/v1/stages/", {"key": "rules", "name": "Rules", "data_schema": schema}, format="json"
    )
    assert created.status_code == 201, created.content
    conversation = bakery.conversation
    conversation.stage = Stage.objects.get(pk=created.json()["id"])
    conversation.save(update_fields=["stage"])
    fake.on("selection", {"stage": "rules"})
    fake.on("extraction", {"p": answer}, {"p": answer})

    started = time.monotonic()
    result = turn_run(conversation=conversation, messages=[bakery.say("A rule")])

    assert time.monotonic() - started < SANITY_SECONDS
    extraction = LLMCall.objects.get(conversation=conversation, purpose="extraction", dry_run=False)
    if valid:
        assert result.extracted == {"p": answer}
    else:
        assert result.extracted == {}
        assert extraction.outcome == LLMOutcome.INVALID
        assert "p: must satisfy format" in extraction.error
