"""Sandboxed rendering and validation of tenant-written prompt templates.

Templates are Jinja2 rendered by `ImmutableSandboxedEnvironment` with
`StrictUndefined`: they reach only the variables given, never Python internals.
A template names only variables from its kind's documented set; anything else,
a syntax error or a sandbox violation is refused when the template is saved.

Tenants' templates run on shared workers, so the sandbox also bounds the work
a template can ask for (`templates_app.sandbox`, `templates_app.limits`): no
macros, blocks, includes or recursive loops, at most `MAX_LOOP_NESTING` nested loops,
every value built capped, loops and work counted. A template over a limit is
refused at save time with the limit named (`TemplateProblem.limit`), and fails
fast at render time (`TemplateRenderError.limit`).

Templates build the *instructions* (the system message). Customer text is never
a template variable: the pipeline passes the conversation as user/assistant
messages, so a customer cannot write into the instructions (prompt injection).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.meta import TrackingCodeGenerator

from templates_app.kinds import TemplateKind
from templates_app.sandbox import BoundedEnvironment
from templates_app.sandbox.limits import (
    MAX_INT_ARG,
    MAX_INT_BITS,
    MAX_LOOP_ITERATIONS,
    MAX_LOOP_NESTING,
    MAX_RANGE,
    MAX_RENDER_WORK,
    MAX_RENDERED_CHARS,
    MAX_TEMPLATE_CHARS,
    MAX_TEMPLATE_TOKENS,
    MAX_VALUE_CHARS,
    Limit,
    TemplateLimitError,
    work_budget,
)

__all__ = [
    "HANDOFF_KEY",
    "MAX_INT_ARG",
    "MAX_INT_BITS",
    "MAX_LOOP_ITERATIONS",
    "MAX_LOOP_NESTING",
    "MAX_RANGE",
    "MAX_RENDERED_CHARS",
    "MAX_RENDER_WORK",
    "MAX_TEMPLATE_CHARS",
    "MAX_TEMPLATE_TOKENS",
    "MAX_VALUE_CHARS",
    "VARIABLES",
    "Limit",
    "TemplateProblem",
    "TemplateRenderError",
    "render",
    "sample_context",
    "template_problems",
]

# The stage key the stage selector answers with when the customer asks for a person.
HANDOFF_KEY = "__handoff__"

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
        "handoff_key": HANDOFF_KEY,
        "schema": stage["data_schema"],
        "missing_fields": ["email"],
        "quick_replies_allowed": True,
    }
    return {k: v for k, v in context.items() if k in VARIABLES[kind]}


class TemplateRenderError(Exception):
    """Any failure to render a template: undefined values, sandbox violations, limits.

    `limit` names the limit when one stopped the render.
    """

    def __init__(self, message: str, *, limit: Limit | None = None) -> None:
        super().__init__(message)
        self.limit = limit


_env = BoundedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)

_FORBIDDEN_TAGS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Extends: "extends",
    # A block calls itself through `self.name()` with no loop to count: unbounded recursion.
    nodes.Block: "block",
}


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line: int | None = None
    limit: Limit | None = None  # the limit the template goes over, if that is the problem

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _structure_problems(ast: nodes.Template) -> list[TemplateProblem]:
    """Forbidden tags, loop nesting and names of internals, in one walk of the tree."""
    problems = []
    deepest = 0
    stack: list[tuple[nodes.Node, int]] = [(ast, 0)]
    while stack:
        node, loops = stack.pop()
        tag = _FORBIDDEN_TAGS.get(type(node))
        if tag is not None:
            problems.append(
                TemplateProblem(f"The {{% {tag} %}} tag is not allowed in prompt templates.", node.lineno)
            )
        elif isinstance(node, nodes.For):
            loops += 1
            deepest = max(deepest, loops)
            if node.recursive:
                problems.append(TemplateProblem("Recursive loops are not allowed.", node.lineno))
        elif isinstance(node, nodes.Name) and node.name == "self":
            # `self` reaches the template's blocks (see _FORBIDDEN_TAGS); nothing else needs it.
            problems.append(
                TemplateProblem("The 'self' variable is not allowed in prompt templates.", node.lineno)
            )
        elif isinstance(node, nodes.Getattr) and node.attr.startswith("_"):
            problems.append(TemplateProblem(f"Access to {node.attr!r} is not allowed.", node.lineno))
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.arg, nodes.Const)
            and str(node.arg.value).startswith("__")
        ):
            problems.append(TemplateProblem(f"Access to {node.arg.value!r} is not allowed.", node.lineno))
        elif (
            isinstance(node, nodes.Filter)
            and node.name == "attr"
            and any(isinstance(arg, nodes.Const) and str(arg.value).startswith("_") for arg in node.args)
        ):
            problems.append(
                TemplateProblem("The attr filter may not reach names starting with '_'.", node.lineno)
            )
        stack.extend((child, loops) for child in node.iter_child_nodes())
    if deepest > MAX_LOOP_NESTING:
        problems.append(
            TemplateProblem(str(TemplateLimitError(Limit.LOOP_NESTING)), limit=Limit.LOOP_NESTING)
        )
    return sorted(problems, key=lambda p: p.line or 0)


def _undeclared_variables(ast: nodes.Template) -> frozenset[str]:
    """`jinja2.meta.find_undeclared_variables`, without its constant folding (see the sandbox)."""
    codegen = TrackingCodeGenerator(_env)
    codegen.optimizer = None
    codegen.visit(ast)
    return frozenset(codegen.undeclared_identifiers)


@dataclass(frozen=True)
class _Analysis:
    undeclared: frozenset[str]
    problems: list[TemplateProblem]
    template: Template | None  # None when there are problems


@functools.lru_cache(maxsize=256)
def _analyse(content: str) -> _Analysis:
    """Parse, check and compile once; the pipeline renders the same few templates all day.

    Raises TemplateSyntaxError, or TemplateLimitError for a template with too many
    tokens or nested too deeply for the parser.
    """
    try:
        # Reading the tokens turns number literals into ints: Python refuses one of more
        # than 4300 digits with a ValueError.
        if sum(1 for _ in _env.lexer.tokenize(content)) > MAX_TEMPLATE_TOKENS:
            raise TemplateLimitError(Limit.TEMPLATE_TOKENS)
    except (ValueError, OverflowError):
        raise TemplateLimitError(Limit.NUMBER_SIZE, "a number in the template is too long") from None
    try:
        ast = _env.parse(content)
        undeclared = _undeclared_variables(ast)
        problems = _structure_problems(ast)
        template = None if problems else _env.from_string(ast)
    except (RecursionError, SyntaxError):
        # Too deep for Jinja2's recursive parser, or for Python's parser of the compiled code.
        raise TemplateLimitError(Limit.NESTING_DEPTH) from None
    return _Analysis(undeclared=undeclared, problems=problems, template=template)


def template_problems(*, kind: str, content: str) -> list[TemplateProblem]:
    """Everything wrong with `content` for templates of `kind`; empty when it is fine."""
    if kind not in VARIABLES:
        return [TemplateProblem(f"Unknown template kind {kind!r}.")]
    if not content or not content.strip():
        return [TemplateProblem("The template is empty.")]
    if len(content) > MAX_TEMPLATE_CHARS:
        return [TemplateProblem(str(TemplateLimitError(Limit.TEMPLATE_LENGTH)), limit=Limit.TEMPLATE_LENGTH)]
    try:
        analysis = _analyse(content)
    except TemplateSyntaxError as exc:
        return [TemplateProblem(f"Syntax error: {exc.message}", exc.lineno)]
    except TemplateLimitError as exc:
        return [TemplateProblem(str(exc), limit=exc.limit)]

    problems: list[TemplateProblem] = []
    allowed = VARIABLES[kind]
    for name in sorted(analysis.undeclared - set(_env.globals)):
        if name not in allowed:
            problems.append(
                TemplateProblem(
                    f"Unknown variable {name!r}; templates of this kind may use: {', '.join(allowed)}."
                )
            )
    problems.extend(analysis.problems)
    if problems or analysis.template is None:
        return problems
    try:
        _render_raw(analysis.template, sample_context(kind))
    except TemplateLimitError as exc:
        problems.append(TemplateProblem(str(exc), _template_line(exc), exc.limit))
    except UndefinedError as exc:
        # An attribute the sample lacks (e.g. a config key a tenant added) is fine
        # at save time; strict undefined still catches it at render time.
        if "has no attribute" not in str(exc):
            problems.append(TemplateProblem(f"Undefined value: {exc}", _template_line(exc)))
    except SecurityError as exc:
        problems.append(TemplateProblem(f"Not allowed in a template: {exc}", _template_line(exc)))
    except Exception as exc:
        problems.append(TemplateProblem(f"The template fails on sample data: {exc}", _template_line(exc)))
    return problems


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on (Jinja2 rewrites tracebacks to template lines)."""
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _render_raw(template: Template, context: dict[str, Any]) -> str:
    # Streamed, so a template that writes too much stops early instead of filling memory.
    chunks: list[str] = []
    size = 0
    with work_budget():
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise TemplateLimitError(Limit.OUTPUT_SIZE)
            chunks.append(chunk)
    return "".join(chunks)


def render(*, kind: str, content: str, context: dict[str, Any]) -> str:
    """Render in the sandbox with the variables of `kind` taken from `context`.

    Raises TemplateRenderError, and nothing else, for any failure: syntax
    errors, undefined values, sandbox violations and the sandbox's limits.
    """
    allowed = VARIABLES.get(kind)
    if allowed is None:
        raise TemplateRenderError(f"Unknown template kind {kind!r}.")
    if len(content) > MAX_TEMPLATE_CHARS:
        raise TemplateRenderError(str(TemplateLimitError(Limit.TEMPLATE_LENGTH)), limit=Limit.TEMPLATE_LENGTH)
    try:
        analysis = _analyse(content)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"line {exc.lineno}: Syntax error: {exc.message}") from exc
    except TemplateLimitError as exc:
        raise TemplateRenderError(str(exc), limit=exc.limit) from exc
    if analysis.template is None:
        first = analysis.problems[0]
        raise TemplateRenderError(str(first), limit=first.limit)
    given = {k: v for k, v in context.items() if k in allowed}
    try:
        text = _render_raw(analysis.template, given)
    except TemplateLimitError as exc:
        raise TemplateRenderError(_at_line(exc, str(exc)), limit=exc.limit) from exc
    except SecurityError as exc:
        raise TemplateRenderError(_at_line(exc, f"Not allowed in a template: {exc}")) from exc
    except Exception as exc:
        # Anything a template can trigger (undefined values, TypeError, RecursionError …)
        # is the template's fault, not the caller's: one error type for the pipeline.
        raise TemplateRenderError(_at_line(exc, str(exc) or type(exc).__name__)) from exc
    return text.strip()


def _at_line(exc: BaseException, message: str) -> str:
    line = _template_line(exc)
    return f"line {line}: {message}" if line else message
