"""Storylines: the few stories a wave of posts is made of, found as the posts arrive.

A wave is rarely one story. Reshares copy a text word for word, near-duplicates change a
word or two, and other posts tell the same story in other words, in French or English.
`StorylineSet` groups one interval's posts online (leader clustering): a post joins the
storyline that already holds the same text (a fingerprint of its normalised text), else
the storyline whose vocabulary it shares most (at least `MIN_SHARED` stems, and a cosine
between the post's stems and the storyline's mean stem vector of `JOIN_SIMILARITY` or
more; never one whose hashtags are all different from the post's), else a *negative*
post starts a new storyline (other posts only join: storylines are about what the wave
complains of).

Per-interval sets are small and mergeable, so the detector keeps one per interval of its
evidence window and merges them when it reports (`merge_storylines`), and `summarise`
ranks them: storylines with a real share of the wave's negative posts, each with a label
(its most characteristic words and its most-copied text), its counts, its reach, who
started it and when, and its most-reached post.

Why words and not sentence vectors: measured on the same generated waves, the default
model's encoder as it is groups by language and tone more than by story (adjusted Rand
index 0.2-0.36 against 0.95-1.0 for words, RESULTS.md); and its ONNX graph outputs
probabilities only, so vectors would need a re-export and 384 numbers carried on every
mention and kept in the detector's state. Stems (accents folded, words cut to
`STEM_LENGTH` letters after common French/English endings) catch reshares,
near-duplicates and paraphrases that share a story's key words or hashtag across
languages ("données" / "data" do not meet, "#DataGate" and "RGPD" do).

State is bounded: at most `MAX_STORYLINES` per set, `MAX_TERMS` stems and
`MAX_FINGERPRINTS` texts per storyline; a negative post that fits nowhere when the set is
full is counted in `other_negative`.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "JOIN_SIMILARITY",
    "Storyline",
    "StorylineSet",
    "merge_storylines",
    "summarise",
    "post_stems",
    "adjusted_rand_index",
    "purity",
]

JOIN_SIMILARITY = 0.3  # chosen by cross-validation on generated waves (RESULTS.md)
MERGE_SIMILARITY = 0.05
STEM_LENGTH = 6
MIN_SHARED = 2  # stems a post must share with a storyline to join it by vocabulary
HASHTAG_SHARE = 0.3  # a hashtag in this share of a storyline's posts marks it
MAX_STORYLINES = 16
MAX_TERMS = 16
MAX_FINGERPRINTS = 2
MIN_NEGATIVE = 3  # a storyline needs this many negative posts to be reported...
MIN_SHARE = 0.05  # ...and this share of the wave's negative posts
LABEL_TERMS = 3
HEADLINE_CHARS = 80
TEXT_CHARS = 120

_WORD = re.compile(r"#?\w+", re.UNICODE)
_SPACES = re.compile(r"\s+")
_URL = re.compile(r"https?://\S+")
# Endings cut before a word is shortened, longest first (French and English).
_ENDINGS = ("ements", "ement", "ations", "ation", "ments", "ment", "ings", "ing", "ées",
            "ees", "és", "es", "ed", "ée", "ee", "é", "s", "e")
_STOPWORDS = frozenset(
    """
    the and for are but not you all any can had her was one our out has him his how its
    may new now old see two way who did get let put say she too use that with have this
    will your from they know want been good much some time very when come here just like
    long make many more only over such take than them well were what about after again
    their there these would could should which while where being those into because
    just really still even why yet

    les des une est pas que qui dans pour par sur avec son ses aux mais ont sont tout
    tous elle ils nous vous leur cette ces comme plus fait etre ete bien sans sous tres
    encore depuis chez apres avant entre aussi alors donc car quoi dont ceux celle
    """.split()
)


def _fold(text: str) -> str:
    """Lowercase without accents: 'Révèlent' -> 'revelent'."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _stem(word: str) -> str:
    for ending in _ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            word = word[: -len(ending)]
            break
    return word[:STEM_LENGTH]


def post_stems(text: str, ignore: Iterable[str] = ()) -> dict[str, str]:
    """The post's distinct stems, each with the first word it came from.

    Hashtags keep their `#` (#DataGate -> "#datagate"): a story's hashtag is its strongest
    mark (see `_hashtag_conflict`). Words under three letters, numbers, stopwords, links
    and the `ignore` words (the brand's names and hashtags) are left out.
    """
    ignored = {_fold(word).lstrip("#@") for term in ignore for word in str(term).split()}
    stems: dict[str, str] = {}
    for token in _WORD.findall(_URL.sub(" ", text)):
        word = token.lstrip("#")
        folded = _fold(word)
        if len(folded) < 3 or folded.isdigit() or folded in _STOPWORDS or folded in ignored:
            continue
        stem = "#" + folded[:2 * STEM_LENGTH] if token.startswith("#") else _stem(folded)
        stems.setdefault(stem, token.lower())
    return stems


def _hashtags(terms: dict[str, int], posts: int, share: float = HASHTAG_SHARE) -> set[str]:
    """The hashtags in at least `share` of a storyline's posts: its marks."""
    return {t for t, n in terms.items() if t.startswith("#") and n >= share * posts}


def _hashtag_conflict(own: set[str], marks: set[str]) -> bool:
    """Two different stories: each has hashtags, none in common. Posts and storylines
    without a hashtag never conflict (most posts have none)."""
    return bool(own) and bool(marks) and not own & marks


def fingerprint(text: str) -> str:
    """Same text up to case, spacing and links: a reshare or a copy-paste."""
    normal = _SPACES.sub(" ", _URL.sub("", _fold(text))).strip()
    return hashlib.blake2b(normal.encode(), digest_size=8).hexdigest()


def _trim(text: str, limit: int) -> str:
    text = _SPACES.sub(" ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return (cut or text[: limit - 1]) + "…"


def _instant(iso: object) -> float:
    """Seconds since the epoch of an ISO time (posts keep their own UTC offsets, so their
    strings do not sort); an unreadable or missing time sorts last."""
    try:
        moment = datetime.fromisoformat(str(iso))
    except ValueError:
        return math.inf
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _first_ref(post: dict[str, Any]) -> dict[str, Any]:
    """Who started it and when (kept small: every interval's storylines have one)."""
    return {key: post.get(key) for key in ("post_key", "url", "author_handle", "created_at")}


def _top_ref(post: dict[str, Any]) -> dict[str, Any]:
    """The most-reached post, with its text."""
    return {
        "post_key": post.get("post_key"),
        "url": post.get("url"),
        "author_handle": post.get("author_handle"),
        "author_name": post.get("author_name"),
        "followers": int(post.get("followers") or 0),
        "created_at": post.get("created_at"),
        "text": _trim(str(post.get("text") or ""), TEXT_CHARS),
    }


@dataclass
class Storyline:
    """One storyline's running summary; every field merges by addition or by max/min."""

    posts: int = 0
    negative: int = 0
    reach: int = 0
    terms: dict[str, int] = field(default_factory=dict)  # stem -> posts that have it
    texts: dict[str, list[Any]] = field(default_factory=dict)  # fingerprint -> [count, text]
    first: dict[str, Any] = field(default_factory=dict)  # earliest post
    top: dict[str, Any] = field(default_factory=dict)  # most-reached post, with its text
    _norm: float = field(default=0.0, repr=False)  # |terms| / posts, kept for speed

    def surface(self, stem: str) -> str:
        """A word of the storyline's texts that `stem` came from (the stem itself if none):
        labels show words, the state keeps only stems."""
        for text in [*(t for _, t in self.texts.values()), str(self.top.get("text") or "")]:
            word = post_stems(text).get(stem)
            if word:
                return word
        return stem

    def similarity(self, stems: Iterable[str], size: int) -> float:
        """Cosine between a post's stems (a 0/1 vector) and this storyline's mean vector."""
        if not self.posts or not size:
            return 0.0
        if not self._norm:
            self._norm = math.sqrt(sum(c * c for c in self.terms.values())) / self.posts
        shared = sum(self.terms.get(stem, 0) for stem in stems) / self.posts
        return shared / (math.sqrt(size) * self._norm) if self._norm else 0.0

    def centroid_similarity(self, other: Storyline) -> float:
        if not self.posts or not other.posts:
            return 0.0
        dot = sum(count * other.terms.get(stem, 0) for stem, count in self.terms.items())
        norms = math.sqrt(sum(c * c for c in self.terms.values())) * math.sqrt(
            sum(c * c for c in other.terms.values()))
        return dot / norms if norms else 0.0

    def add(self, post: dict[str, Any], stems: dict[str, str], print_: str,
            negative: bool, reach: int) -> None:
        self.posts += 1
        self.negative += int(negative)
        self.reach += reach
        for stem in stems:
            self.terms[stem] = self.terms.get(stem, 0) + 1
        copies = self.texts.get(print_)
        if copies is not None:
            copies[0] += 1
        else:
            self.texts[print_] = [1, _trim(str(post.get("text") or ""), TEXT_CHARS)]
        if not self.first or _instant(post.get("created_at")) < _instant(
                self.first.get("created_at")):
            self.first = _first_ref(post)
        if not self.top or int(post.get("followers") or 0) > int(self.top.get("followers", 0)):
            self.top = _top_ref(post)
        self._bound()

    def absorb(self, other: Storyline) -> None:
        self.posts += other.posts
        self.negative += other.negative
        self.reach += other.reach
        for stem, count in other.terms.items():
            self.terms[stem] = self.terms.get(stem, 0) + count
        for print_, (count, text) in other.texts.items():
            if print_ in self.texts:
                self.texts[print_][0] += count
            else:
                self.texts[print_] = [count, text]
        if other.first and (not self.first or _instant(other.first.get("created_at"))
                            < _instant(self.first.get("created_at"))):
            self.first = dict(other.first)
        if other.top and int(other.top.get("followers", 0)) > int(self.top.get("followers", 0)):
            self.top = dict(other.top)
        self._bound()

    def _bound(self) -> None:
        self._norm = 0.0
        if len(self.terms) > 2 * MAX_TERMS:  # some slack: sorting on every post is costly
            kept = sorted(self.terms.items(), key=lambda item: (-item[1], item[0]))[:MAX_TERMS]
            self.terms = dict(kept)
        if len(self.texts) > MAX_FINGERPRINTS:
            kept_texts = sorted(self.texts.items(), key=lambda item: -item[1][0])
            self.texts = dict(kept_texts[:MAX_FINGERPRINTS])

    def to_state(self) -> dict[str, Any]:
        return {"posts": self.posts, "negative": self.negative, "reach": self.reach,
                "terms": self.terms, "texts": self.texts,
                "first": self.first, "top": self.top}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Storyline:
        return cls(posts=int(state["posts"]), negative=int(state["negative"]),
                   reach=int(state["reach"]),
                   terms={str(k): int(v) for k, v in state["terms"].items()},
                   texts={str(k): [int(v[0]), str(v[1])] for k, v in state["texts"].items()},
                   first=dict(state["first"]), top=dict(state["top"]))


class StorylineSet:
    """The storylines of a stretch of posts (one interval, or a merged window).

    >>> def post(number, text):
    ...     return {"post_key": f"twitter:{number}", "text": text, "author": {"handle": "a"},
    ...             "created_at": "2026-11-28T02:00:00+00:00"}
    >>> stories = StorylineSet()
    >>> stories.add(post(1, "Fuite : la marque savait pour le défaut des batteries"), True, 10)
    0
    >>> stories.add(post(2, "La marque savait pour le défaut des batteries depuis des mois"),
    ...             True, 500)  # the same story: it joins storyline 0
    0
    >>> len(stories.storylines), stories.storylines[0].negative
    (1, 2)
    """

    def __init__(self, storylines: list[Storyline] | None = None, other_negative: int = 0,
                 other_posts: int = 0, join: float = JOIN_SIMILARITY) -> None:
        self.join = join  # not stored: the module's value is the one in service
        self.storylines = storylines or []
        self.other_negative = other_negative  # negative posts that fitted no storyline
        self.other_posts = other_posts
        self._by_print = {p: s for s in self.storylines for p in s.texts}

    def add(self, post: dict[str, Any], negative: bool, reach: int,
            ignore: Iterable[str] = ()) -> int | None:
        """Place one post; returns the index of its storyline (None: it joined none).

        `post` holds `text` and, for the summaries, `post_key`, `url`, `author_handle`,
        `author_name`, `followers`, `created_at`.
        """
        text = str(post.get("text") or "")
        print_ = fingerprint(text)
        chosen = self._by_print.get(print_)
        stems = post_stems(text, ignore)
        if chosen is None and stems:
            best, best_score = None, self.join
            # One shared word is chance (a generic "client"); two make a story's link.
            needed = min(MIN_SHARED, len(stems))
            own = {stem for stem in stems if stem.startswith("#")}
            for storyline in self.storylines:
                if sum(1 for stem in stems if stem in storyline.terms) < needed:
                    continue
                if _hashtag_conflict(own, _hashtags(storyline.terms, storyline.posts)):
                    continue
                score = storyline.similarity(stems, len(stems))
                if score >= best_score:
                    best, best_score = storyline, score
            chosen = best
        if chosen is None:
            if not negative or not stems or len(self.storylines) >= MAX_STORYLINES:
                self.other_posts += 1
                self.other_negative += int(negative)
                return None
            chosen = Storyline()
            self.storylines.append(chosen)
        chosen.add(post, stems, print_, negative, reach)
        if print_ in chosen.texts:
            self._by_print[print_] = chosen
        return self.storylines.index(chosen)

    def to_state(self) -> dict[str, Any]:
        return {"storylines": [s.to_state() for s in self.storylines],
                "other_negative": self.other_negative, "other_posts": self.other_posts}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> StorylineSet:
        if not state:
            return cls()
        return cls([Storyline.from_state(s) for s in state["storylines"]],
                   int(state.get("other_negative", 0)), int(state.get("other_posts", 0)))


def merge_storylines(sets: Sequence[StorylineSet], limit: int = MAX_STORYLINES,
                     placed: dict[int, Storyline] | None = None,
                     similarity: float = MERGE_SIMILARITY) -> StorylineSet:
    """One set from several (intervals of a window): storylines sharing a text or enough
    vocabulary become one, biggest first; beyond `limit`, the smallest count as other.

    `placed`, when given, receives id(storyline of `sets`) -> the merged storyline it went
    into (for measuring; storylines beyond `limit` map to dropped objects)."""
    pieces = sorted((s for part in sets for s in part.storylines), key=lambda s: -s.posts)
    merged: list[Storyline] = []
    by_print: dict[str, Storyline] = {}
    for piece in pieces:
        target = next((by_print[p] for p in piece.texts if p in by_print), None)
        if target is None:
            best_score = similarity
            # A lone post (or two) needs two shared stems, as when it joins; a group of
            # posts that keeps a storyline's hashtag or key word is one of its threads.
            needed = min(MIN_SHARED, len(piece.terms)) if piece.posts < 3 else 1
            marks = _hashtags(piece.terms, piece.posts)
            for candidate in merged:
                if sum(1 for stem in piece.terms if stem in candidate.terms) < needed:
                    continue
                if _hashtag_conflict(marks, _hashtags(candidate.terms, candidate.posts)):
                    continue
                score = candidate.centroid_similarity(piece)
                if score >= best_score:
                    target, best_score = candidate, score
        if target is None:
            target = Storyline()
            merged.append(target)
        target.absorb(piece)
        if placed is not None:
            placed[id(piece)] = target
        for print_ in target.texts:
            by_print[print_] = target
    other_negative = sum(part.other_negative for part in sets)
    other_posts = sum(part.other_posts for part in sets)
    merged.sort(key=lambda s: (-s.negative, -s.posts))
    for dropped in merged[limit:]:
        other_negative += dropped.negative
        other_posts += dropped.posts
    return StorylineSet(merged[:limit], other_negative, other_posts)


def _label_terms(storyline: Storyline, everyone: Sequence[Storyline]) -> list[str]:
    """Words frequent in this storyline and rarer in the others."""
    total_posts = sum(s.posts for s in everyone) or 1
    scored = []
    for stem, count in storyline.terms.items():
        inside = count / storyline.posts
        if inside < 0.2:
            continue
        overall = sum(s.terms.get(stem, 0) for s in everyone) / total_posts
        scored.append((inside - overall + inside * 0.5, stem))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [storyline.surface(stem) for _, stem in scored[:LABEL_TERMS]]


def summarise(merged: StorylineSet, limit: int = 5) -> list[dict[str, Any]]:
    """The reported storylines (see docs/records.md, `storylines`), biggest first.

    A storyline is reported when it holds at least MIN_NEGATIVE negative posts and
    MIN_SHARE of all the negative posts seen (storylines and others together).
    """
    everyone = merged.storylines
    total_negative = sum(s.negative for s in everyone) + merged.other_negative
    if total_negative <= 0:
        return []
    rows = []
    for storyline in sorted(everyone, key=lambda s: (-s.negative, -s.posts)):
        share = storyline.negative / total_negative
        if storyline.negative < MIN_NEGATIVE or share < MIN_SHARE:
            continue
        copies, headline = max(storyline.texts.values(), key=lambda item: item[0],
                               default=[0, ""])
        terms = _label_terms(storyline, everyone)
        rows.append({
            "label": " · ".join(terms) or _trim(str(headline), 40),
            "terms": terms,
            "headline": _trim(str(headline), HEADLINE_CHARS),
            "headline_copies": int(copies),
            "posts": storyline.posts,
            "negative": storyline.negative,
            "negative_share": round(storyline.negative / storyline.posts, 3),
            "share": round(share, 3),
            "reach": storyline.reach,
            "first_post": dict(storyline.first),
            "top_post": dict(storyline.top),
        })
        if len(rows) >= limit:
            break
    return rows


# -- measuring ------------------------------------------------------------------------
def _pairs(n: int) -> float:
    return n * (n - 1) / 2


def adjusted_rand_index(truth: Sequence[object], found: Sequence[object]) -> float:
    """Agreement of two partitions of the same items, 0 for chance, 1 when identical
    (Hubert and Arabie 1985)."""
    if len(truth) != len(found):
        raise ValueError("both partitions must cover the same items")
    table: dict[tuple[object, object], int] = {}
    rows: dict[object, int] = {}
    cols: dict[object, int] = {}
    for a, b in zip(truth, found, strict=True):
        table[(a, b)] = table.get((a, b), 0) + 1
        rows[a] = rows.get(a, 0) + 1
        cols[b] = cols.get(b, 0) + 1
    index = sum(_pairs(n) for n in table.values())
    row_pairs = sum(_pairs(n) for n in rows.values())
    col_pairs = sum(_pairs(n) for n in cols.values())
    total = _pairs(len(truth))
    if total == 0:
        return 1.0
    expected = row_pairs * col_pairs / total
    best = (row_pairs + col_pairs) / 2
    return 1.0 if best == expected else (index - expected) / (best - expected)


def purity(truth: Sequence[object], found: Sequence[object]) -> float:
    """Share of items whose found group's majority true label is their own."""
    groups: dict[object, dict[object, int]] = {}
    for a, b in zip(truth, found, strict=True):
        counts = groups.setdefault(b, {})
        counts[a] = counts.get(a, 0) + 1
    return sum(max(c.values()) for c in groups.values()) / len(truth) if truth else 1.0
