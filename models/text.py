"""Removing combining characters (accents) from text, fast: what brand matching
(`pipeline.watchlist.fold`), storylines and terms do to every post and every word.

`without_combining(text)` is exactly
`"".join(c for c in text if not unicodedata.combining(c))`, the characters of a non-zero
combining class removed, without a Python step per character: an ASCII text has none,
and in any other they go by precompiled regex patterns built from every code point that
`unicodedata.combining` calls combining (912 with Python 3.11's Unicode 14): those of
the Basic Multilingual Plane on the first non-ASCII text (a few ms), the others on the
first text with a character beyond U+FFFF (about 40 ms); nothing at import.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["without_combining"]

_BEYOND_BMP = re.compile("[\\U00010000-\\U0010ffff]")


def without_combining(text: str) -> str:
    """`text` without its combining characters.

    >>> without_combining(unicodedata.normalize("NFD", "Société Générale"))
    'Societe Generale'
    """
    if text.isascii():
        return text
    kept = _bmp_marks().sub("", text)
    if _BEYOND_BMP.search(kept):
        kept = _astral_marks().sub("", kept)
    return kept


# Two patterns rather than one: with characters beyond U+FFFF in its class, the regex
# engine tests each character of a text against those ~100 ranges one by one (slower than
# a Python loop over the text); the second runs only on a text that has such characters,
# and is built only then (the first takes a few ms to build, the second about 40).

@functools.cache
def _bmp_marks() -> re.Pattern[str]:
    """The combining characters of the Basic Multilingual Plane."""
    return _class_of([cp for cp in range(0x10000) if unicodedata.combining(chr(cp))])


@functools.cache
def _astral_marks() -> re.Pattern[str]:
    """The combining characters beyond U+FFFF."""
    return _class_of([cp for cp in range(0x10000, 0x110000) if unicodedata.combining(chr(cp))])


def _class_of(code_points: list[int]) -> re.Pattern[str]:
    """One regex character class (repeated) of sorted `code_points`, written as ranges."""
    ranges: list[list[int]] = []
    for cp in code_points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    if not ranges:
        return re.compile("(?!)")  # matches nothing
    members = "".join(re.escape(chr(first)) if first == last
                      else f"{re.escape(chr(first))}-{re.escape(chr(last))}"
                      for first, last in ranges)
    return re.compile(f"[{members}]+")
