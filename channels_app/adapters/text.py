"""Splitting and truncating text to a channel's limits.

WhatsApp and Messenger count characters (code points), Instagram counts UTF-8
bytes. Python strings index code points, so a cut can never land inside one;
we also avoid cutting inside an emoji sequence (ZWJ, variation selector, skin
tone) and prefer paragraph, line, sentence and word boundaries.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

Unit = Literal["chars", "bytes"]

# Where a cut may go, best first: a blank line, a newline, a sentence end, any space.
# Each pattern matches the separator; the chunks on both sides drop it
# (the sentence pattern keeps its punctuation on the left).
_BREAKS = (
    re.compile(r"\n\s*\n"),
    re.compile(r"\n"),
    re.compile(r"(?<=[.!?…。])\s"),
    re.compile(r"\s"),
)
_ELLIPSIS = "…"


def measure(text: str, unit: Unit = "chars") -> int:
    return len(text.encode("utf-8")) if unit == "bytes" else len(text)


def _fits(text: str, limit: int, unit: Unit) -> int:
    """How many leading code points of `text` fit in `limit` units."""
    if unit == "chars":
        return min(len(text), limit)
    # Cut the bytes and drop a partial trailing code point.
    return len(text.encode("utf-8")[:limit].decode("utf-8", "ignore"))


def _joins(char: str) -> bool:
    """True for characters that belong to the code point before them."""
    code = ord(char)
    return (
        unicodedata.combining(char) != 0
        or code == 0x200D  # zero-width joiner
        or 0xFE00 <= code <= 0xFE0F  # variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag sequences (subdivision flags)
    )


def _safe_cut(text: str, n: int) -> int:
    """Move a hard cut left so it does not split a grapheme-ish sequence."""
    cut = n
    while 0 < cut < len(text) and (_joins(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    # Regional-indicator flags come in pairs; do not separate a pair.
    if 0 < cut < len(text) and _is_regional(text[cut]) and _is_regional(text[cut - 1]):
        run = 0
        while cut - run - 1 >= 0 and _is_regional(text[cut - run - 1]):
            run += 1
        if run % 2:
            cut -= 1
    return cut if cut > 0 else n


def _is_regional(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _cut_point(text: str, n: int) -> int:
    """The best place to end a head chunk of at most `n` code points (n < len(text))."""
    window = text[: n + 1]  # a separator right after the limit still counts
    for pattern in _BREAKS:
        starts = [m.start() for m in pattern.finditer(window) if m.start() <= n]
        # A break in the first half would leave a tiny chunk; try a finer one instead.
        if starts and starts[-1] >= max(1, n // 2):
            return starts[-1]
    return _safe_cut(text, n)


def _tail_start(text: str, k: int) -> int:
    """The best place to start a tail chunk of at most `k` code points (k < len(text))."""
    first = len(text) - k
    window = text[first - 1 :]  # a separator right before the limit still counts
    for pattern in _BREAKS:
        ends = [first - 1 + m.end() for m in pattern.finditer(window) if first - 1 + m.end() >= first]
        if ends and ends[0] <= first + k // 2:
            return ends[0]
    cut = first
    while cut < len(text) and _safe_cut(text, cut) != cut:
        cut += 1
    return cut if cut < len(text) else first


def split_text(text: str, limit: int, *, unit: Unit = "chars") -> list[str]:
    """Chunks of at most `limit` units each, whitespace at the seams dropped."""
    if limit < 4:
        raise ValueError("limit must allow at least one code point")
    chunks: list[str] = []
    rest = text.strip()
    while rest:
        if measure(rest, unit) <= limit:
            chunks.append(rest)
            break
        cut = _cut_point(rest, _fits(rest, limit, unit))
        chunk = rest[:cut].rstrip()
        if chunk:
            chunks.append(chunk)
        rest = rest[cut:].lstrip()
    return chunks


def split_tail(text: str, limit: int, *, unit: Unit = "chars") -> tuple[str, str]:
    """(head, tail): the tail fits in `limit` and ends the text; the head is the rest.

    Interactive messages carry a shorter body than plain text, so a long
    reply goes out as plain text first and the buttons ride on a last part
    that is as long as the limit allows.
    """
    text = text.strip()
    if measure(text, unit) <= limit:
        return "", text
    # How many trailing code points fit (a partial leading code point is dropped).
    k = limit if unit == "chars" else len(text.encode("utf-8")[-limit:].decode("utf-8", "ignore"))
    start = _tail_start(text, k)
    return text[:start].rstrip(), text[start:].lstrip()


def truncate(text: str, limit: int, *, unit: Unit = "chars") -> str:
    """`text` shortened to `limit` units, at a word boundary when one is near, with an ellipsis."""
    text = " ".join(text.split())
    if measure(text, unit) <= limit:
        return text
    room = limit - measure(_ELLIPSIS, unit)
    if room <= 0:
        return text[: _fits(text, limit, unit)]
    n = _fits(text, room, unit)
    space = text.rfind(" ", 0, n + 1)
    cut = space if space >= n * 2 // 3 else _safe_cut(text, n)
    return text[:cut].rstrip() + _ELLIPSIS


def unique_titles(titles: list[str], limit: int) -> list[str]:
    """Titles truncated to `limit` and made unique ("Track", "Track 2"): Meta rejects duplicates."""
    out: list[str] = []
    seen: set[str] = set()
    for index, title in enumerate(titles, start=1):
        base = truncate(title, limit) or str(index)
        candidate, n = base, 1
        while candidate.casefold() in seen:
            n += 1
            suffix = f" {n}"
            candidate = truncate(base, limit - len(suffix)).rstrip(_ELLIPSIS) + suffix
        seen.add(candidate.casefold())
        out.append(candidate)
    return out
