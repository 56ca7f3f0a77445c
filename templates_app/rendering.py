"""Sandboxed rendering and validation of tenant-written prompt templates.

Templates are Jinja2 rendered by `ImmutableSandboxedEnvironment` with
`StrictUndefined`: they reach only the variables given, never Python internals.
A template names only variables from its kind's documented set; anything else,
a syntax error or a sandbox violation is refused when the template is saved.

Tenants' templates run on shared workers, so the sandbox also bounds the work
a template can ask for: no macros, includes or recursive loops, at most
`MAX_LOOP_NESTING` nested loops over a `range` of at most `MAX_RANGE` items,
no numeric argument above `MAX_INT_ARG` (widths, counts), and no value or
output longer than `MAX_RENDERED_CHARS`.

Templates build the *instructions* (the system message). Customer text is never
a template variable: the pipeline passes the conversation as user/assistant
messages, so a customer cannot write into the instructions (prompt injection).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from templates_app.models import TemplateKind

MAX_TEMPLATE_CHARS = 20_000
MAX_RENDERED_CHARS = 60_000
MAX_RANGE = 1_000
MAX_LOOP_NESTING = 2
MAX_INT_ARG = 10_000
MAX_INT_BITS = 4_096
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
    """Any failure to render a template: undefined values, sandbox violations, limits."""


def _too_big(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() > MAX_INT_BITS
    return isinstance(value, Sized) and not isinstance(value, dict) and len(value) > MAX_RENDERED_CHARS


def _check_result(value: Any) -> Any:
    if _too_big(value):
        raise SecurityError("the template builds a value larger than the sandbox allows")
    return value


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Widths and counts (`center(n)`, `indent(n)`, `zfill(n)` …) are bounded."""
    for arg in (*args, *kwargs.values()):
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_INT_ARG:
            raise SecurityError(f"numbers passed as widths or counts may not exceed {MAX_INT_ARG}")


# Field widths or precisions in a format string: "%99999d", "%*d", "{:>99999}", "{:>{}}".
_WIDE_FORMAT = re.compile(r"%[-+ #0]*(\d{5,}|\*|\d*\.(\d{5,}|\*))|\{[^{}]*:[^{}]*(\d{5,}|\{)")


def _check_format(fmt: str) -> None:
    if _WIDE_FORMAT.search(fmt):
        raise SecurityError(f"format widths must stay below {MAX_INT_ARG}")


def _check_string_call(owner: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuse the str methods whose output can dwarf their input, before they run."""
    if name in ("format", "format_map"):
        _check_format(owner)
        return
    _check_args(args, kwargs)
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        growth = owner.count(args[0]) * len(args[1]) if args[0] else (len(owner) + 1) * len(args[1])
        if len(owner) + growth > MAX_RENDERED_CHARS:
            raise SecurityError("the template builds a value larger than the sandbox allows")


def _safe_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SecurityError(f"range() may produce at most {MAX_RANGE} items")
    return rng


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    # Filters taking the context or environment get it before the value.
    skip = 2 if getattr(func, "jinja_pass_arg", None) else 1

    @functools.wraps(func)  # keeps jinja_pass_arg, so context-taking filters still get it
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value, rest = args[skip - 1] if len(args) >= skip else None, args[skip:]
        if isinstance(value, str) and name == "format":
            _check_format(value)
        elif isinstance(value, str) and name == "replace":
            _check_string_call(value, "replace", rest, kwargs)
        else:
            _check_args(rest, kwargs)
        return _check_result(func(*args, **kwargs))

    return guarded


def _power_too_big(base: Any, exponent: Any) -> bool:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return False
    return max(base.bit_length(), 1) * exponent > MAX_INT_BITS


def _repeat_too_big(seq: Any, times: Any) -> bool:
    if not (isinstance(seq, (str, list, tuple)) and isinstance(times, int)):
        return False
    return len(seq) * times > MAX_RENDERED_CHARS


class _Env(ImmutableSandboxedEnvironment):
    """No mutation of given data, no internals (`__class__`, `mro` …), bounded work."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # lipsum() writes text by the kilobyte; the other globals are harmless.
        self.globals = {**{k: v for k, v in self.globals.items() if k != "lipsum"}, "range": _safe_range}
        self.filters = {name: _guard_filter(name, func) for name, func in self.filters.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _power_too_big(left, right):
            raise SecurityError("the template builds a number larger than the sandbox allows")
        if operator == "*" and (_repeat_too_big(left, right) or _repeat_too_big(right, left)):
            raise SecurityError("the template builds a value larger than the sandbox allows")
        return _check_result(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        target = getattr(__obj, "__wrapped__", __obj)  # str.format arrives wrapped by the sandbox
        owner = getattr(target, "__self__", None)
        if isinstance(owner, str):
            _check_string_call(owner, getattr(target, "__name__", ""), args, kwargs)
        return _check_result(super().call(__context, __obj, *args, **kwargs))


_env = _Env(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)

_FORBIDDEN_TAGS: dict[type[nodes.Node], str] = {
    nodes.Macro: "macro",
    nodes.CallBlock: "call",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from … import",
    nodes.Extends: "extends",
}


@dataclass(frozen=True)
class TemplateProblem:
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


def _loop_depth(node: nodes.Node, depth: int = 0) -> int:
    deepest = depth
    for child in node.iter_child_nodes():
        child_depth = depth + 1 if isinstance(child, nodes.For) else depth
        deepest = max(deepest, _loop_depth(child, child_depth))
    return deepest


def _structure_problems(ast: nodes.Template) -> list[TemplateProblem]:
    problems = []
    for node_type, tag in _FORBIDDEN_TAGS.items():
        for node in ast.find_all(node_type):
            problems.append(
                TemplateProblem(f"The {{% {tag} %}} tag is not allowed in prompt templates.", node.lineno)
            )
    for node in ast.find_all(nodes.For):
        if node.recursive:
            problems.append(TemplateProblem("Recursive loops are not allowed.", node.lineno))
    if _loop_depth(ast) > MAX_LOOP_NESTING:
        problems.append(TemplateProblem(f"Loops may be nested at most {MAX_LOOP_NESTING} deep."))
    for node in ast.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            problems.append(TemplateProblem(f"Access to {node.attr!r} is not allowed.", node.lineno))
    for node in ast.find_all(nodes.Getitem):
        if isinstance(node.arg, nodes.Const) and str(node.arg.value).startswith("__"):
            problems.append(TemplateProblem(f"Access to {node.arg.value!r} is not allowed.", node.lineno))
    for node in ast.find_all(nodes.Filter):
        if node.name == "attr" and any(
            isinstance(arg, nodes.Const) and str(arg.value).startswith("_") for arg in node.args
        ):
            problems.append(
                TemplateProblem("The attr filter may not reach names starting with '_'.", node.lineno)
            )
    return problems


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
    for name in sorted(meta.find_undeclared_variables(ast) - set(_env.globals)):
        if name not in allowed:
            problems.append(
                TemplateProblem(
                    f"Unknown variable {name!r}; templates of this kind may use: {', '.join(allowed)}."
                )
            )
    problems.extend(_structure_problems(ast))
    if problems:
        return problems
    try:
        _render_raw(_compile(content), sample_context(kind))
    except UndefinedError as exc:
        # An attribute the sample lacks (e.g. a config key a tenant added) is fine
        # at save time; strict undefined still catches it at render time.
        if "has no attribute" not in str(exc):
            problems.append(TemplateProblem(f"Undefined value: {exc}"))
    except SecurityError as exc:
        problems.append(TemplateProblem(f"Not allowed in a template: {exc}"))
    except Exception as exc:
        problems.append(TemplateProblem(f"The template fails on sample data: {exc}"))
    return problems


@functools.lru_cache(maxsize=256)
def _compile(content: str) -> Template:
    """Parse, check and compile once; the pipeline renders the same few templates all day."""
    ast = _env.parse(content)
    structure = _structure_problems(ast)
    if structure:
        raise TemplateRenderError(str(structure[0]))
    return _env.from_string(ast)


def _render_raw(template: Template, context: dict[str, Any]) -> str:
    # Streamed, so a template that writes too much stops early instead of filling memory.
    chunks: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise TemplateRenderError(f"Rendered template exceeds {MAX_RENDERED_CHARS} characters.")
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
    try:
        template = _compile(content)
    except TemplateSyntaxError as exc:
        raise TemplateRenderError(f"line {exc.lineno}: Syntax error: {exc.message}") from exc
    given = {k: v for k, v in context.items() if k in allowed}
    try:
        text = _render_raw(template, given)
    except TemplateRenderError:
        raise
    except SecurityError as exc:
        raise TemplateRenderError(f"Not allowed in a template: {exc}") from exc
    except Exception as exc:
        # Anything a template can trigger (undefined values, TypeError, RecursionError …)
        # is the template's fault, not the caller's: one error type for the pipeline.
        raise TemplateRenderError(str(exc) or type(exc).__name__) from exc
    return text.strip()
