"""Regular expressions in the JSON Schemas tenants write: found, vetted, run on RE2.

A stage's data schema may hold `pattern`s and `patternProperties` keys, and the
pipeline runs them on model output. Python's `re` backtracks, so a pattern such
as `^(a+)+$` can take exponential time on a short string. Two defences:

- at save time a pattern that can backtrack catastrophically is refused: a
  quantified group that itself contains a variable quantifier (`(a+)+`,
  `([a-z]+\\.)*`), or alternatives under a quantifier that can start with the
  same character or match nothing (`(a|ab)*`, `(a|b?)+`). The check reads the
  tree Python's own regex parser builds, so alternatives of single characters,
  which it turns into one character class (`(\\w|\\d)+`), are not alternatives;
- every pattern runs on RE2 (google-re2), whose time is linear in the input,
  and so a pattern RE2 cannot compile (backreferences, lookahead, lookbehind,
  possessive quantifiers) is refused at save time too.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

import re2

RE2_OPTIONS = re2.Options()
RE2_OPTIONS.log_errors = False  # the error goes back to the caller, not to stderr


class PatternError(ValueError):
    """A pattern RE2 cannot compile."""


@functools.lru_cache(maxsize=1024)
def re2_compile(pattern: str) -> Any:
    try:
        return re2.compile(pattern, RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(str(reason)) from None


def re2_search(pattern: str, text: str) -> bool:
    """`re.search`, in time linear in `text`."""
    return re2_compile(pattern).search(text) is not None


def _objects(schema: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(path, object) for `schema` and every object nested in it, whatever the keyword.

    Walking only the keywords known to hold subschemas missed a subschema reached by
    `$ref` (`{"$ref": "#/x", "x": {...}}`), which jsonschema validates all the same.
    Iterative: the depth of a stored schema is bounded, but walking it must not recurse.
    """
    stack: list[tuple[str, Any]] = [(path, schema)]
    while stack:
        here, node = stack.pop()
        prefix = f"{here}/" if here else ""
        if isinstance(node, dict):
            yield here, node
            stack.extend((f"{prefix}{key}", value) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((f"{prefix}{index}", value) for index, value in reversed(list(enumerate(node))))


def schema_patterns(schema: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, pattern) for every regular expression in `schema` and anything nested in it."""
    for here, node in _objects(schema, path):
        prefix = f"{here}/" if here else ""
        if isinstance(node.get("pattern"), str):
            yield f"{prefix}pattern", node["pattern"]
        if isinstance(node.get("patternProperties"), dict):
            for key in node["patternProperties"]:
                yield f"{prefix}patternProperties/{key}", key


def _uses(schema: Any, keyword: str) -> bool:
    """Whether `keyword` is used anywhere in `schema`."""
    return any(keyword in node for _, node in _objects(schema))


def pattern_errors(schema: Any) -> list[dict[str, str]]:
    """The regular expressions of `schema` that are refused, as `{"path", "message"}`."""
    errors = []
    for path, pattern in schema_patterns(schema):
        problem = pattern_problem(pattern)
        if problem:
            errors.append({"path": path, "message": f"The pattern '{pattern}' {problem}."})
    combination = combination_problem(schema)
    if combination:
        errors.append({"path": "(root)", "message": combination})
    return errors


def combination_problem(schema: Any) -> str | None:
    """Keywords that together would run patterns on Python's re instead of RE2."""
    if _uses(schema, "unevaluatedProperties") and _uses(schema, "patternProperties"):
        # jsonschema matches patternProperties with Python's re while it works out
        # what unevaluatedProperties leaves over; that path cannot run on RE2.
        return "unevaluatedProperties cannot be combined with patternProperties; use additionalProperties."
    return None


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is refused, or None."""
    try:
        re2_compile(pattern)
    except PatternError as exc:
        return (
            f"uses syntax the linear-time engine that runs patterns (RE2) does not support ({exc}); "
            "backreferences, lookahead, lookbehind and possessive quantifiers are not available"
        )
    try:
        tree = sre_parse.parse(pattern)
        ignore_case = bool(tree.state.flags & sre.SRE_FLAG_IGNORECASE) or _local_ignore_case(tree)
        problem = _backtracking(tree, quantified=False, ignore_case=ignore_case)
    except RecursionError:
        return "is nested too deeply"
    except (re.error, OverflowError) as exc:
        return f"is not a valid regular expression ({exc})"
    return f"can backtrack catastrophically: {problem}" if problem else None


# --- the analysis of Python's parse tree ---------------------------------------------

_REPEATS = frozenset({sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT})
# Every character class is judged on these: all of Latin-1 and one of each other kind.
_ALPHABET = frozenset(
    [chr(code) for code in range(256)] + ["ā", "ẞ", "Ω", "ж", "中", "٣", "\u2028", "\u3000", "😀"]
)
_CATEGORIES = {
    sre.CATEGORY_DIGIT: re.compile(r"\d"),
    sre.CATEGORY_NOT_DIGIT: re.compile(r"\D"),
    sre.CATEGORY_SPACE: re.compile(r"\s"),
    sre.CATEGORY_NOT_SPACE: re.compile(r"\S"),
    sre.CATEGORY_WORD: re.compile(r"\w"),
    sre.CATEGORY_NOT_WORD: re.compile(r"\W"),
}


def _local_ignore_case(items: Any) -> bool:
    for op, av in items:
        if op is sre.SUBPATTERN and av[1] & sre.SRE_FLAG_IGNORECASE:
            return True
        if any(_local_ignore_case(sub) for sub in _children(op, av)):
            return True
    return False


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-sequences of one node of the tree."""
    if op in _REPEATS:
        return [av[2]]
    if op is sre.SUBPATTERN:
        return [av[3]]
    if op is sre.BRANCH:
        return list(av[1])
    if op is sre.ATOMIC_GROUP:
        return [av]
    if op in (sre.ASSERT, sre.ASSERT_NOT):
        return [av[1]]
    if op is sre.GROUPREF_EXISTS:
        return [branch for branch in av[1:] if branch is not None]
    return []


def _backtracking(items: Any, *, quantified: bool, ignore_case: bool) -> str | None:
    for op, av in items:
        if op in _REPEATS:
            _low, high, body = av
            repeats = high is sre.MAXREPEAT or high > 1
            if repeats and _has_variable_repeat(body):
                return "a quantified group contains another quantifier"
            found = _backtracking(body, quantified=quantified or repeats, ignore_case=ignore_case)
        elif op is sre.BRANCH:
            if quantified and _alternatives_overlap(av[1], ignore_case=ignore_case):
                return "alternatives under a quantifier can match the same text"
            found = next(
                (
                    p
                    for alt in av[1]
                    if (p := _backtracking(alt, quantified=quantified, ignore_case=ignore_case))
                ),
                None,
            )
        else:
            found = next(
                (
                    p
                    for sub in _children(op, av)
                    if (p := _backtracking(sub, quantified=quantified, ignore_case=ignore_case))
                ),
                None,
            )
        if found:
            return found
    return None


def _has_variable_repeat(items: Any) -> bool:
    for op, av in items:
        if op in _REPEATS and av[0] != av[1]:
            return True
        if any(_has_variable_repeat(sub) for sub in _children(op, av)):
            return True
    return False


def _alternatives_overlap(alternatives: list[Any], *, ignore_case: bool) -> bool:
    """Two alternatives can start with the same character, or one can match nothing."""
    seen: set[str] = set()
    for alternative in alternatives:
        chars, nullable = _first(alternative)
        if nullable:
            return True
        if ignore_case:
            chars = {ch.casefold() for ch in chars}
        if seen & chars:
            return True
        seen |= chars
    return False


def _first(items: Any) -> tuple[set[str], bool]:
    """The characters `items` can start with, and whether it can match nothing."""
    chars: set[str] = set()
    for op, av in items:
        item_chars, nullable = _first_of(op, av)
        chars |= item_chars
        if not nullable:
            return chars, False
    return chars, True


def _first_of(op: Any, av: Any) -> tuple[set[str], bool]:
    if op is sre.LITERAL:
        return {chr(av)}, False
    if op is sre.NOT_LITERAL:
        return set(_ALPHABET - {chr(av)}), False
    if op is sre.ANY:
        return set(_ALPHABET), False
    if op is sre.IN:
        return {ch for ch in _ALPHABET if _in_class(av, ch)}, False
    if op in _REPEATS:
        chars, nullable = _first(av[2])
        return chars, nullable or av[0] == 0
    if op is sre.SUBPATTERN:
        return _first(av[3])
    if op is sre.ATOMIC_GROUP:
        return _first(av)
    if op is sre.BRANCH:
        firsts = [_first(alt) for alt in av[1]]
        return set().union(*(f[0] for f in firsts)), any(f[1] for f in firsts)
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return set(), True
    return set(_ALPHABET), True  # backreferences and the like: anything


def _in_class(members: list[Any], ch: str) -> bool:
    negate = False
    found = False
    for op, av in members:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            found |= ord(ch) == av
        elif op is sre.RANGE:
            found |= av[0] <= ord(ch) <= av[1]
        elif op is sre.CATEGORY:
            category = _CATEGORIES.get(av)
            found |= category is None or bool(category.match(ch))
    return found != negate
