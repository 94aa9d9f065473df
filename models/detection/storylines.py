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

Words first, then sentence vectors across languages. Measured on the same generated
waves, the default model's encoder post by post groups by language and tone more than by
story (adjusted Rand index 0.2-0.36 against 0.95-1.0 for words, RESULTS.md), so posts join
storylines by words: stems (accents folded, words cut to `STEM_LENGTH` letters after
common French/English endings) catch reshares, near-duplicates and paraphrases that share
a story's key words or hashtag. A French and an English telling that share no word land
apart; `join_languages` then joins storylines of different languages whose mean sentence
vectors (carried on mentions by the score stage, each centred on its language) are close:
a storyline's mean over many posts is far steadier than one post's vector, and once the
language direction is taken off, what is left is mostly the story.

State is bounded: at most `MAX_STORYLINES` per set, `MAX_TERMS` stems and
`MAX_FINGERPRINTS` texts per storyline; a negative post that fits nowhere when the set is
full is counted in `other_negative`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
import struct
import unicodedata
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.detection.terms import is_stopword
from models.text import without_combining

__all__ = [
    "JOIN_SIMILARITY",
    "Storyline",
    "StorylineSet",
    "merge_storylines",
    "join_languages",
    "centered_cosine",
    "unpack_int8",
    "summarise",
    "post_stems",
    "adjusted_rand_index",
    "purity",
]

JOIN_SIMILARITY = 0.3  # chosen by cross-validation on generated waves (RESULTS.md)
MERGE_SIMILARITY = 0.05
# Storylines of different languages whose language-centred mean sentence vectors have at
# least this cosine are one story (chosen by cross-validation, RESULTS.md); each needs
# `LANGUAGE_JOIN_POSTS` posts with vectors (a lone post's vector is noise).
LANGUAGE_JOIN_SIMILARITY = 0.5
LANGUAGE_JOIN_POSTS = 3
MAX_VECTOR_DIMENSIONS = 1024
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


def _fold(text: str) -> str:
    """Lowercase without accents: 'Révèlent' -> 'revelent'."""
    lowered = text.lower()
    if lowered.isascii():  # its own NFKD form, no accent: most words of most posts
        return lowered
    return without_combining(unicodedata.normalize("NFKD", lowered))


def _stem(word: str) -> str:
    if not word.endswith(_ENDINGS):  # one test for a word without any of the endings
        return word[:STEM_LENGTH]
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
        if len(folded) < 3 or folded.isdigit() or is_stopword(folded) or folded in ignored:
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
    # Sum of its posts' sentence vectors (None until a post brings one), and how many of
    # its posts brought one, per language: what `join_languages` compares. An array of
    # doubles: 8 bytes a number, where a list of floats takes 32 (a brand's evidence
    # window holds hundreds of storylines of 384 numbers).
    vector: array | None = None
    languages: dict[str, int] = field(default_factory=dict)
    _norm: float = field(default=0.0, repr=False)  # |terms| / posts, kept for speed
    # The vector as stored, kept until the vector changes: the detector writes its whole
    # state on every mention, and the closed intervals' storylines do not change.
    _packed: str | None = field(default=None, repr=False)

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
            negative: bool, reach: int, vector: Sequence[float] | None = None,
            language: str | None = None) -> None:
        self.posts += 1
        if vector is not None:
            self._add_vector(vector, {language or "": 1})
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

    def _add_vector(self, vector: Sequence[float], languages: dict[str, int]) -> None:
        self._packed = None
        if self.vector is None:
            self.vector = array("d", vector)
        elif len(vector) == len(self.vector):
            # A list comprehension's float additions are the interpreter's specialised
            # ones: 20 % cheaper than map(operator.add, ...) over 384 numbers.
            self.vector = array("d", [x + y for x, y in zip(self.vector, vector, strict=True)])
        else:  # another model's vectors (a model change mid-window): keep ours
            return
        for language, count in languages.items():
            self.languages[language] = self.languages.get(language, 0) + count

    @property
    def vector_posts(self) -> int:
        return sum(self.languages.values())

    def main_language(self) -> str:
        return max(self.languages.items(), key=lambda item: (item[1], item[0]))[0] \
            if self.languages else ""

    def absorb(self, other: Storyline) -> None:
        self.posts += other.posts
        if other.vector is not None:
            self._add_vector(other.vector, other.languages)
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
        # Copies: the state is serialised later (Faust sends table values from a buffer),
        # and by then this storyline may have grown; a restart must read what was counted.
        state = {"posts": self.posts, "negative": self.negative, "reach": self.reach,
                 "terms": dict(self.terms),
                 "texts": {print_: list(entry) for print_, entry in self.texts.items()},
                 "first": dict(self.first), "top": dict(self.top)}
        posts = self.vector_posts
        if self.vector is not None and posts:
            if self._packed is None:
                # `posts` read once: the property sums the languages on every call.
                self._packed = pack_vector([x / posts for x in self.vector])
            state["vector"] = self._packed
            state["languages"] = dict(self.languages)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Storyline:
        return cls(posts=int(state["posts"]), negative=int(state["negative"]),
                   reach=int(state["reach"]),
                   terms={str(k): int(v) for k, v in state["terms"].items()},
                   texts={str(k): [int(v[0]), str(v[1])] for k, v in state["texts"].items()},
                   first=dict(state["first"]), top=dict(state["top"]),
                   **_vector_from_state(state))


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
            ignore: Iterable[str] = (), vector: Sequence[float] | None = None,
            language: str | None = None) -> int | None:
        """Place one post; returns the index of its storyline (None: it joined none).

        `post` holds `text` and, for the summaries, `post_key`, `url`, `author_handle`,
        `author_name`, `followers`, `created_at`. `vector` (the post's sentence vector,
        when the score stage gave one) and `language` do not decide where the post goes:
        they let `join_languages` join storylines told in different languages.
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
        chosen.add(post, stems, print_, negative, reach, vector, language)
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


def pack_vector(vector: Sequence[float]) -> str:
    """A vector as base64 of little-endian float16 (2 bytes a number: a mean direction
    needs no more, and the detector's state is written often)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}e", *vector)).decode()


def unpack_vector(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 2}e", raw))


def unpack_int8(text: object) -> list[float]:
    """A mention's `vector` (docs/records.md): base64 of a little-endian float16 scale, then
    one int8 per number. Raises ValueError when it is not that."""
    if not isinstance(text, str):
        raise ValueError("must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("is not base64") from None
    if len(raw) < 3 or len(raw) - 2 > MAX_VECTOR_DIMENSIONS:
        raise ValueError(f"holds {max(0, len(raw) - 2)} numbers, not 1-{MAX_VECTOR_DIMENSIONS}")
    (scale,) = struct.unpack("<e", raw[:2])
    if not math.isfinite(scale):
        raise ValueError("has a scale that is not a finite number")
    # Each byte's int8 value as a float, looked up: the same products as `scale * int`
    # (an int8 converts to a double exactly) at about half the cost for 384 numbers.
    return [scale * _INT8_FLOATS[byte] for byte in raw[2:]]


# Byte (0-255) -> the float of the int8 it holds (two's complement).
_INT8_FLOATS = tuple(float(byte - 256 if byte > 127 else byte) for byte in range(256))


def _vector_from_state(state: dict[str, Any]) -> dict[str, Any]:
    """A stored storyline's vector sum (stored as its mean) and languages, if it has them."""
    if not state.get("vector") or not state.get("languages"):
        return {}
    languages = {str(k): int(v) for k, v in state["languages"].items()}
    posts = sum(languages.values())
    return {"vector": array("d", [x * posts for x in unpack_vector(str(state["vector"]))]),
            "languages": languages}


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def _language_means(storylines: Sequence[Storyline], dim: int) -> dict[str, list[float]]:
    """Each language's mean vector over the storylines' posts (a storyline's mean counts
    for each of its languages by its number of posts in it)."""
    sums: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for storyline in storylines:
        assert storyline.vector is not None
        for language, count in storyline.languages.items():
            weight = count / storyline.vector_posts
            acc = sums.setdefault(language, [0.0] * dim)
            for i, x in enumerate(storyline.vector):
                acc[i] += weight * x
            counts[language] = counts.get(language, 0) + count
    return {language: [x / counts[language] for x in acc] for language, acc in sums.items()}


def centered_cosine(a: Storyline, b: Storyline, means: dict[str, list[float]]) -> float:
    """Cosine between two storylines' mean vectors once each post's language mean is taken
    off: what is left is what the storyline says, not the language it says it in."""
    return _cosine(_centred(a, means), _centred(b, means))


def _centred(storyline: Storyline, means: dict[str, list[float]]) -> list[float]:
    assert storyline.vector is not None
    centred = list(storyline.vector)
    for language, count in storyline.languages.items():
        mean = means.get(language)
        if mean is not None:
            centred = [x - count * m for x, m in zip(centred, mean, strict=True)]
    return centred


def join_languages(merged: StorylineSet, similarity: float = LANGUAGE_JOIN_SIMILARITY,
                   min_posts: int = LANGUAGE_JOIN_POSTS, centre: bool = False,
                   placed: dict[int, Storyline] | None = None) -> StorylineSet:
    """Join storylines told in different languages that say the same thing.

    Words group a story's posts within a language; a French and an English telling that
    share no word stay apart. Here the storylines with at least `min_posts` vectors are
    compared by their mean sentence vectors: the mean of many posts is far less noisy
    than one post. The vectors are expected centred on their language already (the
    score stage takes off each language's mean over a reference corpus): the encoder
    puts two texts of one language closer than two tellings of one story, along a
    language direction that is the same for every text. `centre` instead takes off each
    language's mean over this set's storylines: measured worse (RESULTS.md), since a
    wave whose languages tell different stories then looks alike once centred, and a
    single story told in two languages is centred away to noise.

    Pairs are joined best first while their cosine reaches `similarity`, and only
    across languages: a group never holds two storylines of the same main language
    (those are for words to join or keep apart). `placed` (as in `merge_storylines`) is
    updated to point at the joined storylines.
    """
    voters = [s for s in merged.storylines if s.vector is not None and s.vector_posts]
    dims = {len(s.vector) for s in voters if s.vector is not None}
    if len(dims) != 1:
        return merged
    dim = dims.pop()
    means = _language_means(voters, dim) if centre else {}
    groups = [{"members": [s], "vector": _centred(s, means), "languages": {s.main_language()}}
              for s in voters if s.vector_posts >= min_posts]
    while True:
        best, best_score = None, similarity
        for i, one in enumerate(groups):
            for other in groups[i + 1:]:
                if one["languages"] & other["languages"]:
                    continue
                score = _cosine(one["vector"], other["vector"])
                if score >= best_score:
                    best, best_score = (one, other), score
        if best is None:
            break
        one, other = best
        one["members"] += other["members"]
        one["vector"] = [a + b for a, b in zip(one["vector"], other["vector"], strict=True)]
        one["languages"] |= other["languages"]
        groups.remove(other)
    absorbed: dict[int, Storyline] = {}
    for group in groups:
        members = sorted(group["members"], key=lambda s: (-s.negative, -s.posts))
        for member in members[1:]:
            members[0].absorb(member)
            absorbed[id(member)] = members[0]
    if not absorbed:
        return merged
    if placed is not None:
        for key, target in placed.items():
            placed[key] = absorbed.get(id(target), target)
    kept = [s for s in merged.storylines if id(s) not in absorbed]
    kept.sort(key=lambda s: (-s.negative, -s.posts))
    return StorylineSet(kept, merged.other_negative, merged.other_posts)


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
