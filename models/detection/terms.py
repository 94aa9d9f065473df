"""Terms and hashtags that surge with a wave: counted in its posts, compared with before.

`extract_terms` turns a post into its distinct terms (hashtags kept with their `#`, words
of three letters or more, common English and French words left out). `TermBaseline` keeps
a decaying document frequency of terms over the brand's past posts, bounded in size, so
that `surging` can say which terms of the wave are far more frequent than usual.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

__all__ = ["extract_terms", "TermBaseline"]

_TOKEN = re.compile(r"#\w+|\w{3,}", re.UNICODE)
_STOPWORDS = frozenset(
    """
    the and for are but not you all any can had her was one our out has him his how its
    may new now old see two way who did get let put say she too use that with have this
    will your from they know want been good much some time very when come here just like
    long make many more only over such take than them well were what about after again
    their there these would could should which while where being those into because
    https http www com amp via
    les des une est pas que qui dans pour par sur avec son ses aux mais ont sont tout
    tous elle ils nous vous leur cette ces comme plus fait être été bien sans sous très
    """.split()
)


def extract_terms(text: str, ignore: Iterable[str] = ()) -> set[str]:
    """Distinct lowercased terms of a post, minus stopwords and the `ignore` terms."""
    ignored = {term.lower() for term in ignore}
    terms = set()
    for token in _TOKEN.findall(text.lower()):
        if token.isdigit() or token in _STOPWORDS or token in ignored:
            continue
        if token.startswith("#") and token[1:] in ignored:
            continue
        terms.add(token)
    return terms


class TermBaseline:
    """Decaying document frequency of terms, at most `max_terms` of them."""

    def __init__(self, max_terms: int = 2000) -> None:
        self.max_terms = max_terms
        self.frequency: dict[str, float] = {}
        self.documents = 0.0

    def learn(self, term_counts: Counter[str], documents: int, decay: float) -> None:
        """Fold one interval's term counts (over `documents` posts) in, after decaying."""
        if decay < 1.0:
            for term in list(self.frequency):
                value = self.frequency[term] * decay
                if value < 0.01:
                    del self.frequency[term]
                else:
                    self.frequency[term] = value
        self.documents = self.documents * decay + documents
        for term, count in term_counts.items():
            self.frequency[term] = self.frequency.get(term, 0.0) + count
        if len(self.frequency) > 2 * self.max_terms:
            kept = sorted(self.frequency.items(), key=lambda item: -item[1])[: self.max_terms]
            self.frequency = dict(kept)

    def surging(
        self, term_counts: Counter[str], documents: int, limit: int, min_count: int = 2
    ) -> list[dict[str, object]]:
        """Terms of a wave (counts over `documents` posts) ranked by lift over the baseline."""
        if documents <= 0:
            return []
        rows = []
        for term, count in term_counts.items():
            if count < min_count:
                continue
            share_now = count / documents
            # Half a post of prior keeps never-seen terms finite and ranks them by count.
            share_before = (self.frequency.get(term, 0.0) + 0.5) / (self.documents + 1.0)
            lift = share_now / share_before
            if lift >= 2.0:
                rows.append({"term": term, "count": int(count), "lift": round(lift, 1)})
        rows.sort(key=lambda row: (-row["count"], -row["lift"], row["term"]))  # type: ignore[operator]
        return rows[:limit]

    def to_state(self) -> dict[str, object]:
        return {"documents": self.documents, "frequency": dict(self.frequency)}

    def load_state(self, state: dict[str, object]) -> None:
        self.documents = float(state["documents"])  # type: ignore[arg-type]
        self.frequency = {
            str(k): float(v)
            for k, v in dict(state["frequency"]).items()  # type: ignore[call-overload]
        }
