"""Sandboxed rendering and validation of tenant-written prompt templates.

Templates are Jinja2 rendered by `SandboxedEnvironment` with `StrictUndefined`:
they reach only the variables given, never Python internals. A template names
only variables from its kind's documented set; anything else, a syntax error
or a sandbox violation is refused when the template is saved.

Templates build the *instructions* (the system message). Customer text is never
a template variable: the pipeline passes the conversation as user/assistant
messages, so a customer cannot write into the instructions (prompt injection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates_app.models import TemplateKind

MAX_TEMPLATE_CHARS = 20_000
MAX_RENDERED_CHARS = 60_000

_COMMON = {
    "business": "The business: `name`, `config` (description, contact, opening_hours, faq, extra …).",
    "agent": "The agent: `name`, `persona`, `instructions`.",
    "stage": "The current stage: `key`, `name`, `description`, `is_handoff`, `data_schema`.",
    "stages": "Every stage of the business: a list of `key`, `name`, `description`, `is_handoff`.",
    "collected_data": "Data collected so far in this conversation (an object).",
    "contact": "The customer: `name` (as their profile gives it) and `channel`.",
    "now": "Current date and time (ISO 8601, UTC).",
}

VARIABLES: dict[str, dict[str, str]] = {
    TemplateKind.STAGE_SELECTION: {
        **_COMMON,
        "handoff_key": "The reserved stage key meaning 'the customer asks for a person'.",
    },
    TemplateKind.DATA_EXTRACTION: {
        **_COMMON,
        "schema": "The JSON Schema of the data this stage collects.",
    },
    TemplateKind.RESPONSE_GENERATION: {
        **_COMMON,
        "missing_fields": "Required fields of the stage's schema not collected yet.",
        "quick_replies_allowed": "True when the channel can show quick-reply buttons.",
    },
}


def sample_context(kind: str) -> dict[str, Any]:
    """A realistic context used to test-render a template at save time."""
    stage = {
        "key": "greeting",
        "name": "Greeting",
        "description": "The customer says hello.",
        "is_handoff": False,
        "data_schema": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    context: dict[str, Any] = {
        "business": {"name": "Sample business", "config": {"description": "Sample", "faq": [], "extra": {}}},
        "agent": {"name": "Assistant", "persona": "Friendly.", "instructions": ""},
        "stage": stage,
        "stages": [stage],
        "collected_data": {"name": "Ana"},
        "contact": {"name": "Ana", "channel": "whatsapp"},
        "now": "2026-01-01T12:00:00+00:00",
        "handoff_key": "__handoff__",
        "schema": stage["data_schema"],
        "missing_fields": ["email"],
        "quick_replies_allowed": True,
    }
    return {k: v for k, v in context.items() if k in VARIABLES[kind]}


class _Env(ImmutableSandboxedEnvironment):
    """No mutation of given data, no internals (`__class__`, `mro`, `func_globals` …)."""


_env = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def template_problems(*, kind: str, content: str) -> list[TemplateProblem]:
    """Everything wrong with `content` for templates of `kind`; empty when it is fine."""
    if kind not in VARIABLES:
        return [TemplateProblem(f"Unknown template kind {kind!r}.")]
    if not content or not content.strip():
        return [TemplateProblem("The template is empty.")]
    if len(content) > MAX_TEMPLATE_CHARS:
        return [TemplateProblem(f"The template is longer than {MAX_TEMPLATE_CHARS} characters.")]
    try:
        ast = _env.parse(content)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"Syntax error: {exc.message}", exc.lineno)]

    problems: list[TemplateProblem] = []
    allowed = VARIABLES[kind]
    for name in sorted(meta.find_undeclared_variables(ast)):
        if name not in allowed:
            problems.append(
                TemplateProblem(
                    f"Unknown variable {name!r}; templates of this kind may use: {', '.join(allowed)}."
                )
            )
    for node in ast.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            problems.append(TemplateProblem(f"Access to {node.attr!r} is not allowed.", node.lineno))
    if problems:
        return problems
    try:
        _render_raw(content, sample_context(kind))
    except SecurityError as exc:
        problems.append(TemplateProblem(f"Not allowed in a template: {exc}"))
    except UndefinedError as exc:
        # An attribute the sample lacks (e.g. a config key a tenant added) is fine
        # at save time; strict undefined still catches it at render time.
        if "has no attribute" not in str(exc):
            problems.append(TemplateProblem(f"Undefined value: {exc}"))
    except TemplateError as exc:
        problems.append(TemplateProblem(f"Template error: {exc}"))
    except (TypeError, ValueError, ArithmeticError) as exc:
        problems.append(TemplateProblem(f"The template fails on sample data: {exc}"))
    return problems


class TemplateRenderError(Exception):
    pass


def _render_raw(content: str, context: dict[str, Any]) -> str:
    return _env.from_string(content).render(context)


def render(*, kind: str, content: str, context: dict[str, Any]) -> str:
    """Render in the sandbox. Raises TemplateRenderError for any template failure,
    sandbox violations included."""
    allowed = VARIABLES.get(kind, {})
    given = {k: v for k, v in context.items() if k in allowed}
    try:
        text = _render_raw(content, given)
    except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise TemplateRenderError(str(exc)) from exc
    if len(text) > MAX_RENDERED_CHARS:
        raise TemplateRenderError(f"Rendered template exceeds {MAX_RENDERED_CHARS} characters.")
    return text.strip()
