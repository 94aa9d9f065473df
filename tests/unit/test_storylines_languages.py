"""Storylines across languages: the vector maths (join_languages, int8 vectors on mentions)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import numpy as np
import pytest

from models.detection import BrandMonitor, DetectorConfig
from models.detection import storylines as sl
from models.sentiment.serving.sentence_vectors import LanguageMeans, pack_int8, pooled

DIM = 48


def unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0, 1) for _ in range(DIM)]
    norm = sum(x * x for x in v) ** 0.5
    return [x / norm for x in v]


def noisy(base: list[float], rng: random.Random, noise: float = 0.6) -> list[float]:
    return [b + noise * rng.gauss(0, 1) / DIM ** 0.5 for b in base]


def tell(part: sl.StorylineSet, story: list[float], language: str, words: list[str],
         rng: random.Random, posts: int = 8) -> None:
    """`posts` negative posts of one story in one language: shared words, vectors close to
    the story's direction (the language direction already taken off, as on mentions)."""
    for i in range(posts):
        text = " ".join(rng.sample(words, 4)) + f" n{i}"
        part.add({"text": text}, True, 1, (), noisy(story, rng), language)


def test_tellings_of_one_story_in_two_languages_join_and_different_stories_do_not():
    rng = random.Random(4)
    leak, prices, outage = unit(rng), unit(rng), unit(rng)
    part = sl.StorylineSet()
    tell(part, leak, "fr", ["piratage", "abonnés", "bancaires", "coordonnées", "pirates"], rng)
    tell(part, leak, "en", ["hackers", "stolen", "card", "details", "subscribers"], rng)
    tell(part, prices, "fr", ["hausse", "tarifs", "facture", "grimpe", "insupportable"], rng)
    tell(part, outage, "en", ["outage", "power", "street", "dawn", "freezer"], rng)
    merged = sl.merge_storylines([part])
    assert len(sl.summarise(merged)) == 4  # by words: each language apart

    joined = sl.join_languages(merged)
    reported = sl.summarise(joined)
    assert len(reported) == 3
    assert [r["posts"] for r in reported] == [16, 8, 8]
    languages = [s.languages for s in joined.storylines]
    assert languages[0] == {"en": 8, "fr": 8}  # the leak, told in both
    assert {"fr": 8} in languages and {"en": 8} in languages  # prices, outage: apart


def test_two_storylines_of_one_language_are_never_joined_by_vectors():
    rng = random.Random(5)
    story = unit(rng)
    part = sl.StorylineSet()
    tell(part, story, "fr", ["piratage", "abonnés", "bancaires", "coordonnées"], rng)
    tell(part, story, "fr", ["hausse", "tarifs", "facture", "grimpe"], rng)
    merged = sl.merge_storylines([part])
    assert len(sl.join_languages(merged).storylines) == 2  # words keep them apart


def test_a_join_needs_enough_posts_and_a_close_enough_vector():
    rng = random.Random(6)
    story, other = unit(rng), unit(rng)
    part = sl.StorylineSet()
    tell(part, story, "fr", ["piratage", "abonnés", "bancaires", "coordonnées"], rng)
    tell(part, story, "en", ["hackers", "stolen", "card", "details"], rng,
         posts=sl.LANGUAGE_JOIN_POSTS - 1)  # too few vectors to judge
    tell(part, other, "de", ["strom", "ausfall", "dunkel", "kühlschrank"], rng)
    merged = sl.merge_storylines([part])
    assert len(sl.join_languages(merged).storylines) == 3
    assert len(sl.join_languages(merged, min_posts=2).storylines) == 2


def test_join_updates_where_each_piece_went_and_vectors_survive_the_state():
    rng = random.Random(7)
    story = unit(rng)
    minutes = [sl.StorylineSet(), sl.StorylineSet()]
    tell(minutes[0], story, "fr", ["piratage", "abonnés", "bancaires", "coordonnées"], rng)
    tell(minutes[1], story, "en", ["hackers", "stolen", "card", "details"], rng)
    # Through JSON, as the detector keeps its intervals: vectors as float16 means.
    minutes = [sl.StorylineSet.from_state(json.loads(json.dumps(m.to_state())))
               for m in minutes]
    assert minutes[1].storylines[0].languages == {"en": 8}
    placed: dict[int, sl.Storyline] = {}
    merged = sl.merge_storylines(minutes, placed=placed)
    joined = sl.join_languages(merged, placed=placed)
    (only,) = joined.storylines
    assert {id(target) for target in placed.values()} == {id(only)}
    assert only.posts == 16 and only.languages == {"fr": 8, "en": 8}
    # A storyline without vectors (words only, an older state) keeps the old behaviour.
    assert "vector" not in sl.Storyline(posts=1).to_state()


def test_mention_vectors_are_int8_with_a_scale_and_bad_ones_are_rejected():
    vector = np.linspace(-0.3, 0.5, 384).astype(np.float32)
    packed = pack_int8(vector)
    assert len(packed) == 516  # base64 of 2 + 384 bytes
    back = np.array(sl.unpack_int8(packed))
    assert back.shape == (384,) and np.abs(back - vector).max() <= 0.5 / 127 * 0.5 + 1e-3
    for bad in (12, "not base64!", "", pack_int8(np.zeros(2000))):
        with pytest.raises(ValueError):
            sl.unpack_int8(bad)


def test_the_detector_reads_vectors_from_mentions_and_rejects_broken_ones():
    monitor = BrandMonitor("lumio", "Lumio", DetectorConfig(interval_seconds=60))
    mention = {"brand": "lumio", "post_key": "twitter:1", "text": "Piratage des abonnés",
               "created_at": "2026-03-03T09:00:00+00:00", "author": {"handle": "a"},
               "reach": 5, "language": "fr", "sentiment": {"label": "negative"},
               "vector": pack_int8(np.ones(8, dtype=np.float32))}
    monitor.add_mention(mention)
    storyline = monitor.current.storylines.storylines[0]
    assert storyline.languages == {"fr": 1}
    assert storyline.vector == pytest.approx([1.0] * 8, abs=0.01)
    with pytest.raises(ValueError, match="mention.vector"):
        monitor.add_mention({**mention, "vector": "%%%"})
    monitor.add_mention({k: v for k, v in mention.items() if k != "vector"})  # version 1
    assert monitor.current.storylines.storylines[0].posts == 2


def test_language_means_centre_a_vector_and_skip_unknown_languages():
    means = LanguageMeans(6, "sha", {"fr": np.array([0.5, 0.5], dtype=np.float32)})
    assert means.centre(np.array([1.0, 0.5], dtype=np.float32), "FR").tolist() == [0.5, 0.0]
    assert means.centre(np.array([1.0, 0.5], dtype=np.float32), "es") is None
    assert means.centre(np.array([1.0, 0.5], dtype=np.float32), None) is None
    # pooled: mean over real tokens only, then unit length.
    hidden = np.array([[[3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    assert pooled(hidden, np.array([[1, 0]])) == pytest.approx(np.array([[0.6, 0.8]]))


def test_bilingual_storylines_share_no_word_across_languages_and_several_within():
    from pipeline.generator import BILINGUAL_STORYLINES, BrandProfile, Generator, Scenario

    ignore = ["lumio", "energie", "#lumio", "@lumio_energie"]
    every = {"fr": set(), "en": set()}
    for name, script in BILINGUAL_STORYLINES.items():
        for language, templates in script.items():
            assert len(templates) >= 5, (name, language)
            stems = [set(sl.post_stems(t.format(b="Lumio"), ignore)) for t in templates]
            every[language] |= set().union(*stems)
            # Within a language, each paraphrase shares a key word with another one.
            assert all(any(s & other for other in stems if other is not s) for s in stems)
    assert not every["fr"] & every["en"]
    # The CLI's `bilingual-wave` scripts them, each story in both languages.
    brand = BrandProfile("lumio", ("Lumio",), (), (), base_per_minute=1)
    generator = Generator([brand], datetime(2026, 3, 3, tzinfo=UTC), seed=1, record_truth=True,
                          scenarios=[Scenario("bilingual-wave", "lumio", 0, 20, 60)])
    posts = list(generator.posts(20))
    told = {(generator.truth[f"{p['platform']}:{p['id']}"][0], p.get("language"))
            for p in posts}
    for name in BILINGUAL_STORYLINES:
        assert {(name, "fr"), (name, "en")} <= told


def test_a_storyline_keeps_its_vector_sum_in_8_bytes_a_number():
    """A brand's evidence window holds hundreds of storylines: their vector sums are most
    of a worker's memory that grows with the window (bench/RESULTS.md, heap profile)."""
    import tracemalloc

    rng = random.Random(7)
    dim = 384
    posts = [[rng.gauss(0, 1) for _ in range(dim)] for _ in range(2 * 100)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        storylines = []
        for n in range(100):
            storyline = sl.Storyline()
            for vector in posts[2 * n: 2 * n + 2]:  # two posts: the sum is the storyline's own
                storyline.add({"text": "x"}, {}, "print", True, 1, vector, "fr")
            storylines.append(storyline)
        per_storyline = (tracemalloc.get_traced_memory()[0] - before) / len(storylines)
    finally:
        tracemalloc.stop()
    assert per_storyline < 2 * 8 * dim, f"{per_storyline:.0f} bytes a storyline"
    assert list(storylines[0].vector) == pytest.approx(
        [a + b for a, b in zip(posts[0], posts[1], strict=True)])
