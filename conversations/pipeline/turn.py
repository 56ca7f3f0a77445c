"""The LLM calls of one turn over an injected LLM callable: a context in, a draft out.

No database here: `service.turn_run` builds the context, passes
`conversations.llm.client.llm_complete` as `llm`, and persists the draft.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import SchemaError

from conversations.llm.client import LLMCallable, LLMRequest, LLMResult
from conversations.llm.errors import LLMError
from conversations.pipeline.context import StageInfo, TurnContext
from conversations.pipeline.formats import MAX_QUICK_REPLIES, MAX_QUICK_REPLY_CHARS, schema_partial
from conversations.pipeline.prompts import (
    Prompt,
    extraction_prompt,
    reask_prompt,
    response_prompt,
    selection_prompt,
)
from icmp.jsonschemas import tenant_schema_validator
from icmp.schema_patterns import PatternError
from templates_app.rendering import HANDOFF_KEY

logger = logging.getLogger(__name__)

# Completion caps for the structured calls: a stage key, or a few fields of JSON.
SELECTION_MAX_TOKENS = 256
EXTRACTION_MAX_TOKENS = 1024
# Routing and extraction should be repeatable; the agent's temperature is for the reply.
STRUCTURED_TEMPERATURE = 0.0

HANDOFF_ASKED = "customer asked for a person"


@dataclass
class CallRecord:
    """One LLM request and what came of it; becomes one LLMCall row."""

    purpose: str
    stage: StageInfo | None
    template_id: Any
    template_version: int | None
    request: LLMRequest
    result: LLMResult | None = None
    error: LLMError | None = None
    outcome: str = "ok"  # ok / invalid / error (LLMOutcome values)
    problem: str = ""  # why an answer was invalid, or the error
    errors: list[str] = field(default_factory=list)  # an invalid extraction's schema violations


@dataclass
class TurnDraft:
    calls: list[CallRecord] = field(default_factory=list)
    stage: StageInfo | None = None
    stage_changed: bool = False
    # Validated values for the collected data, in merge order.
    extracted: dict[str, Any] = field(default_factory=dict)
    reply_text: str | None = None
    quick_replies: list[str] = field(default_factory=list)
    handoff_reason: str | None = None
    # A required call (selection or reply) failed: the turn cannot complete.
    failure: LLMError | None = None
    failed_purpose: str | None = None


def _request(ctx: TurnContext, prompt: Prompt) -> LLMRequest:
    if prompt.purpose == "response":
        temperature, max_tokens = ctx.agent.temperature, ctx.agent.max_tokens
    elif prompt.purpose == "selection":
        temperature, max_tokens = STRUCTURED_TEMPERATURE, SELECTION_MAX_TOKENS
    else:
        temperature, max_tokens = STRUCTURED_TEMPERATURE, max(EXTRACTION_MAX_TOKENS, ctx.agent.max_tokens)
    return LLMRequest(
        messages=prompt.messages,
        model=ctx.agent.model,
        temperature=temperature,
        max_tokens=max_tokens,
        response_format=prompt.response_format,
    )


def _call(llm: LLMCallable, ctx: TurnContext, prompt: Prompt) -> CallRecord:
    """Run one request. Never raises: an LLMError is kept on the record. Safe in a worker thread."""
    record = CallRecord(
        purpose=prompt.purpose,
        stage=prompt.stage,
        template_id=prompt.template.id if prompt.template else None,
        template_version=prompt.template.version if prompt.template else None,
        request=_request(ctx, prompt),
    )
    try:
        record.result = llm(record.request)
    except LLMError as exc:
        record.error, record.outcome, record.problem = exc, "error", str(exc)
    return record


# --- stage selection -----------------------------------------------------------------


def selection_answer(result: LLMResult, stage_keys: list[str]) -> str | None:
    """The stage key (or the handoff key) the model chose, or None when it chose nothing valid.

    Compatible servers may ignore the schema and answer the bare key, perhaps quoted.
    """
    data = result.json
    if isinstance(data, dict):
        candidate = data.get("stage")
    elif isinstance(data, str):
        candidate = data
    else:
        candidate = result.text.strip().strip("\"'`.").strip()
    if isinstance(candidate, str) and (candidate.strip() in stage_keys or candidate.strip() == HANDOFF_KEY):
        return candidate.strip()
    return None


def _selection_apply(ctx: TurnContext, record: CallRecord, draft: TurnDraft) -> None:
    answer = selection_answer(record.result, [s.key for s in ctx.stages]) if record.result else None
    if answer is None:
        record.outcome = "invalid"
        record.problem = "The answer is not one of the business's stage keys; the stage is kept."
        logger.info(
            "Stage selection answered no valid stage key; keeping the current stage",
            extra={"conversation": str(ctx.conversation_id)},
        )
        return
    if answer == HANDOFF_KEY:
        draft.handoff_reason = HANDOFF_ASKED
        return
    chosen = ctx.stage_by_key(answer)
    if chosen is not None and (draft.stage is None or chosen.key != draft.stage.key):
        draft.stage, draft.stage_changed = chosen, True
        if chosen.is_handoff:
            draft.handoff_reason = f"entered the handoff stage {chosen.key!r}"


# --- data extraction -----------------------------------------------------------------


def drop_nulls(value: Any) -> Any:
    """Strict mode answers null for what the customer did not say: that means "not stated"."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def extraction_errors(schema: dict[str, Any], data: Any) -> list[str]:
    """What is wrong with `data` for `schema`, described by path and rule, never by value.

    The top-level `required` list is not enforced (see `schema_partial`); nested
    objects must still be whole.
    """
    if not isinstance(data, dict):
        return ["(root): the answer must be one JSON object"]
    try:
        # The stage's patterns run on RE2: linear in the length of the model's answer.
        validator = tenant_schema_validator(schema_partial(schema))
        found = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    except SchemaError as exc:
        logger.warning("A stage's data schema is not a valid JSON Schema: %s", exc.message)
        return ["(root): the stage's schema is invalid"]
    except PatternError as exc:
        logger.warning("A stage's data schema has a pattern that cannot run: %s", exc)
        return ["(root): the stage's schema is invalid"]
    except Exception as exc:
        # Validation runs checks (formats, patterns) on the model's answer: whatever one
        # raises on it, the answer is invalid, and the turn goes on without it.
        logger.warning("Validating an extraction answer failed: %s", type(exc).__name__)
        return [f"(root): the answer could not be validated ({type(exc).__name__})"]
    errors = []
    for error in found:
        path = "/".join(str(p) for p in error.absolute_path) or "(root)"
        rule = json.dumps(error.validator_value, ensure_ascii=False, default=str)[:200]
        errors.append(f"{path}: must satisfy {error.validator} {rule}")
    return errors


def _extraction_check(record: CallRecord, schema: dict[str, Any]) -> dict[str, Any] | None:
    """The answer's valid data (declared properties only), or None with the record marked invalid."""
    if record.result is None:
        return None
    data = record.result.json
    if data is None:
        errors = ["(root): the answer is not JSON"]
    else:
        data = drop_nulls(data)
        errors = extraction_errors(schema, data)
    if errors:
        record.outcome, record.errors, record.problem = "invalid", errors, "; ".join(errors)
        return None
    declared = schema.get("properties") or {}
    return {k: v for k, v in data.items() if k in declared}


def _extract(
    llm: LLMCallable, ctx: TurnContext, prompt: Prompt, record: CallRecord, draft: TurnDraft, *, reask: bool
) -> None:
    """Check an extraction answer; on invalid output ask once more with the errors."""
    assert prompt.schema is not None
    draft.calls.append(record)
    valid = _extraction_check(record, prompt.schema)
    if valid is None and reask and record.outcome == "invalid":
        retry = reask_prompt(prompt, previous_answer=record.result.text, errors=record.errors)
        second = _call(llm, ctx, retry)
        draft.calls.append(second)
        valid = _extraction_check(second, prompt.schema)
        if valid is None:
            logger.info(
                "Extraction still invalid after the re-ask; nothing merged",
                extra={"conversation": str(ctx.conversation_id), "stage": prompt.stage.key},
            )
    if valid:
        draft.extracted.update(valid)


# --- the reply -------------------------------------------------------------------------


def quick_replies_clean(values: Any) -> list[str]:
    """At most three distinct non-empty options of at most 20 characters; longer ones are dropped
    (a cut-off button label is worse than none)."""
    if not isinstance(values, list):
        return []
    cleaned: list[str] = []
    for value in values:
        if isinstance(value, str):
            text = " ".join(value.split())
            if text and len(text) <= MAX_QUICK_REPLY_CHARS and text not in cleaned:
                cleaned.append(text)
    return cleaned[:MAX_QUICK_REPLIES]


def _reply_apply(record: CallRecord, draft: TurnDraft) -> None:
    result = record.result
    assert result is not None
    data = result.json
    if isinstance(data, dict) and isinstance(data.get("reply"), str):
        reply, options = data["reply"].strip(), quick_replies_clean(data.get("quick_replies"))
    elif isinstance(data, str):
        reply, options = data.strip(), []  # a bare JSON string
    elif record.request.response_format is not None and data is not None:
        reply, options = "", []  # JSON of the wrong shape: never send raw JSON to a customer
    else:
        reply, options = result.text.strip(), []  # a server that ignored the schema
    if not reply:
        record.outcome, record.problem = "invalid", "The reply is empty."
        draft.failure = LLMError("the model returned an empty reply", transient=True)
        draft.failed_purpose = record.purpose
        return
    draft.reply_text, draft.quick_replies = reply, options


def collected_merge(existing: dict[str, Any], extracted: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """`existing` updated with `extracted`, and the keys whose value actually changed."""
    merged = dict(existing)
    changed = []
    for key, value in extracted.items():
        if key not in merged or merged[key] != value:
            merged[key] = value
            changed.append(key)
    return merged, changed


# --- the turn --------------------------------------------------------------------------


def turn_draft(*, ctx: TurnContext, llm: LLMCallable) -> TurnDraft:
    """Stage selection, data extraction (with one re-ask) and the reply.

    Round trips: stage selection and extraction for the *current* stage run
    concurrently (two worker threads; the LLM callable touches no database),
    then the reply is generated: two sequential round trips on the common path.
    Only when the stage changes and the new stage collects data is extraction
    redone for the new stage (a third round trip), and an invalid extraction
    costs one re-ask. When the stage changes, the current stage's extraction is
    still merged if valid (it is what the customer said) but not re-asked.

    A failed selection or reply sets `failure` and stops the turn; a failed
    extraction is recorded and the turn goes on without it.
    """
    draft = TurnDraft(stage=ctx.current_stage)
    current = ctx.current_stage
    selection = selection_prompt(ctx) if ctx.stages else None
    first_extraction = (
        extraction_prompt(ctx, stage=current, collected_data=ctx.collected_data) if current else None
    )

    if selection is not None and first_extraction is not None:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="llm-turn") as pool:
            selection_future = pool.submit(_call, llm, ctx, selection)
            extraction_future = pool.submit(_call, llm, ctx, first_extraction)
            selection_record, extraction_record = selection_future.result(), extraction_future.result()
    else:
        selection_record = _call(llm, ctx, selection) if selection is not None else None
        extraction_record = _call(llm, ctx, first_extraction) if first_extraction is not None else None

    if selection_record is not None:
        draft.calls.append(selection_record)
        if selection_record.error is not None:
            draft.failure, draft.failed_purpose = selection_record.error, selection_record.purpose
            if extraction_record is not None:
                draft.calls.append(extraction_record)
            return draft
        _selection_apply(ctx, selection_record, draft)

    if extraction_record is not None and first_extraction is not None:
        _extract(llm, ctx, first_extraction, extraction_record, draft, reask=not draft.stage_changed)

    if draft.stage_changed and draft.stage is not None:
        collected, _ = collected_merge(ctx.collected_data, draft.extracted)
        again = extraction_prompt(ctx, stage=draft.stage, collected_data=collected)
        if again is not None:
            _extract(llm, ctx, again, _call(llm, ctx, again), draft, reask=True)

    collected, _ = collected_merge(ctx.collected_data, draft.extracted)
    reply = _call(llm, ctx, response_prompt(ctx, stage=draft.stage, collected_data=collected))
    draft.calls.append(reply)
    if reply.error is not None:
        draft.failure, draft.failed_purpose = reply.error, reply.purpose
        return draft
    _reply_apply(reply, draft)
    return draft
