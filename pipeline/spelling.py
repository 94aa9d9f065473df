""""Did you mean" for misspelt names: watchlist keys, receiver options, `VIGIE_*` variables."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` was most likely meant to be, or None if none is close.

    The cutoff (0.75) accepts one dropped, added or swapped letter in a short key
    (`url_evn`, `pasword_env`) but not an unrelated word of the same length.
    """
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.75)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`", did you mean 'x'?"` or an empty string: appended to an "unknown ..." message."""
    match = closest(word, candidates)
    return f", did you mean {match!r}?" if match else ""
