"""A bilingual wave through the real model and the detector: each story, told in French and
in English with no word in common, comes out as one storyline.

The mentions are built as the score stage builds them (the built default model's sentence
vectors, centred on the post's language, packed on the record); the sentiment labels are
the generator's script, so that the test is about grouping, not about the classifier.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from models.detection import BrandMonitor, DetectorConfig
from pipeline.generator import BILINGUAL_MIX, BrandProfile, Generator, Scenario
from pipeline.mentions import mention_record
from pipeline.sentiment_settings import SentimentSettings

pytestmark = pytest.mark.integration

BRAND = BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#Lumio",), ("@lumio_energie",),
                     base_per_minute=3)
START = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def classifier():
    classifier = SentimentSettings.from_env().load_classifier()
    yield classifier
    classifier.close()


def test_a_bilingual_three_storyline_wave_comes_out_as_three_storylines(classifier):
    assert classifier.language_means is not None, "the default model gives sentence vectors"
    config = DetectorConfig(interval_seconds=60, quiet_minutes=20)
    monitor = BrandMonitor("lumio", "Lumio Energie", config)
    words_only = BrandMonitor("lumio", "Lumio Energie", config)  # mentions without vectors
    scenario = Scenario("bilingual-wave", "lumio", 24 * 60, 25, 60)  # 55 / 30 / 15 %
    generator = Generator([BRAND], START - timedelta(days=1), seed=3, scenarios=[scenario],
                          record_truth=True)
    posts = list(generator.posts(24 * 60 + 40))
    results = dict(zip((p["text"] for p in posts), classifier.predict([p["text"] for p in posts]),
                       strict=True))
    minute = START - timedelta(days=1)
    events, story_of, split_events = [], {}, []
    for post in posts:
        moment = datetime.fromisoformat(post["created_at"])
        while moment >= minute + timedelta(minutes=1):
            events += monitor.close_interval(minute, minute + timedelta(minutes=1))
            split_events += words_only.close_interval(minute, minute + timedelta(minutes=1))
            minute += timedelta(minutes=1)
        key = f"{post['platform']}:{post['id']}"
        story, label = generator.truth[key]
        story_of[key] = story
        post = {**post, "language": post.get("language") or "und"}
        result = results[post["text"]]
        mention = mention_record(post, "lumio", ["lumio"], label, {label: 1.0},
                                 classifier.name, classifier.sentence_vector(
                                     result, post["language"]))
        monitor.add_mention(orjson.loads(orjson.dumps(mention)))  # as read from Kafka
        words_only.add_mention({k: v for k, v in mention.items() if k != "vector"})

    updates = [e for e in events if e["event"] in ("opened", "updated")]
    assert updates, "the wave opened an incident"
    storylines = updates[-1]["storylines"]
    assert len(storylines) == 3, [s["label"] for s in storylines]
    # Each is one story, told in both languages (its top post and first post may be in
    # either); shares follow the script's 55 / 30 / 15 %.
    shares = [s["share"] for s in storylines]
    assert shares == sorted(shares, reverse=True) and shares[0] > 0.4
    for storyline, story in zip(storylines, BILINGUAL_MIX, strict=True):
        first = storyline["first_post"]["post_key"]
        assert story_of[first] == story, (storyline["label"], story)
        assert storyline["negative"] >= 10
    # Without the vectors (mentions of schema version 1), words alone split the same wave
    # by language.
    split = [e for e in split_events if e["event"] in ("opened", "updated")][-1]["storylines"]
    assert len(split) > 3, [s["label"] for s in split]
