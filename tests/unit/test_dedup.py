"""The bounded record of posts seen (pipeline/dedup.py) and validate's per-record verdict."""

from __future__ import annotations

from pathlib import Path

import orjson

from agents.seen_table import SeenTable
from agents.validate import ValidateStage
from pipeline.dedup import SeenPosts, bucket_width_s, decode_hashes, encode_hashes, key_hash
from pipeline.schema import decode_post, fill_language
from pipeline.watchlist_watch import WatchlistWatcher

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3600.0


def test_a_post_passes_once_within_the_horizon():
    seen = SeenPosts(horizon_s=48 * HOUR)
    assert seen.add(key_hash("x:1"), 1_000_000.0)
    assert not seen.add(key_hash("x:1"), 1_000_000.0)
    assert seen.add(key_hash("x:2"), 1_000_000.0)
    assert seen.size == 2


def test_compacted_buckets_still_answer_and_take_late_posts():
    seen = SeenPosts(horizon_s=48 * HOUR)
    start = 1_000_000.0
    for n in range(1000):
        seen.add(key_hash(f"x:{n}"), start)
    seen.add(key_hash("x:new"), start + 5 * HOUR)  # time moves on
    seen.expire()
    old = seen.buckets[seen.bucket_of(start)]
    assert not old.recent and len(old.compact) == 1000, "compacted to 8 bytes an entry"
    assert not seen.add(key_hash("x:7"), start)
    assert seen.add(key_hash("x:late"), start) and not seen.add(key_hash("x:late"), start)


def test_buckets_past_the_horizon_are_dropped_and_an_older_post_passes_unkept():
    seen = SeenPosts(horizon_s=2 * HOUR)
    seen.add(key_hash("x:1"), 0.0)
    seen.add(key_hash("x:2"), 10 * HOUR)
    assert seen.expire() == [0]
    assert seen.size == 1
    assert seen.add(key_hash("x:1"), 0.0) and seen.add(key_hash("x:1"), 0.0)
    assert seen.size == 1


def test_the_key_bound_drops_the_oldest_buckets_first():
    seen = SeenPosts(horizon_s=48 * HOUR, max_keys=150)
    for hour in range(3):
        for n in range(100):
            seen.add(key_hash(f"x:{hour}:{n}"), hour * HOUR)
    dropped = seen.expire()
    assert dropped == [seen.bucket_of(0.0), seen.bucket_of(HOUR)]
    assert seen.size == 100
    assert not seen.add(key_hash("x:2:5"), 2 * HOUR)


def test_hashes_round_trip_and_buckets_suit_the_horizon():
    values = [key_hash(f"p:{n}") for n in range(10)]
    assert list(decode_hashes(encode_hashes(values))) == values
    assert len(encode_hashes(values)) == 80
    assert key_hash("twitter:1") == key_hash("twitter:1") != key_hash("twitter:2")
    assert bucket_width_s(48 * HOUR) == 600.0 and bucket_width_s(100.0) == 25.0


def post(text: str, **changes) -> bytes:
    return orjson.dumps({"schema_version": 1, "platform": "forum", "id": "1",
                         "author": {"handle": "a"}, "text": text,
                         "created_at": "2026-03-02T11:00:00+00:00", **changes})


def stage() -> ValidateStage:
    return ValidateStage(WatchlistWatcher(ROOT / "config" / "watchlist.yaml"), 65536, "raw")


def test_validate_passes_on_only_posts_about_a_watched_brand_with_their_language():
    verdict = stage().check(b"k", post("Le réseau Orange est encore en panne ce matin"), 0, 5)
    assert verdict.kind == "valid" and verdict.key == b"forum:1"
    sent = orjson.loads(verdict.value)
    assert (sent["language"], sent["language_detected"]) == ("fr", True)
    assert stage().check(b"k", post("Une belle journée au marché"), 0, 6).kind == "unmatched"
    given = orjson.loads(stage().check(b"k", post("Orange is down", language="en"), 0, 7).value)
    assert (given["language"], given["language_detected"]) == ("en", False)


def test_validate_turns_a_bad_record_into_a_dead_letter_with_its_reason():
    verdict = stage().check(b"forum:9", b"{not json", 3, 42)
    letter = orjson.loads(verdict.value)
    assert (verdict.kind, verdict.reason) == ("invalid", "bad_json")
    assert (letter["stage"], letter["partition"], letter["offset"]) == ("validate", 3, 42)


def test_fill_language_leaves_a_post_it_cannot_place_undetermined():
    decoded = decode_post(post("zzz qqq"), max_bytes=65536)
    fill_language(decoded, lambda _text: None)
    assert (decoded["language"], decoded["language_detected"]) == ("und", False)


def test_a_post_dated_a_day_ahead_does_not_age_the_recent_buckets():
    now = 1_000_000.0
    seen = SeenPosts(horizon_s=2 * HOUR, wall_clock=lambda: now)
    seen.add(key_hash("x:1"), now - 60)
    assert seen.add(key_hash("x:future"), now + 24 * HOUR)  # a source's broken clock
    assert seen.expire() == []
    assert not seen.add(key_hash("x:1"), now - 60), "a resent post is still caught"
    assert not seen.add(key_hash("x:future"), now + 24 * HOUR)


def test_a_copy_sent_later_is_found_within_the_horizon_only():
    seen = SeenPosts(horizon_s=HOUR)
    seen.add(key_hash("lumio|x:1"), 1_000_000.0)
    assert seen.seen_between(key_hash("lumio|x:1"), 1_000_000.0 + 1800 - HOUR, 1_001_800.0)
    assert not seen.seen_between(key_hash("lumio|x:2"), 1_001_800.0 - HOUR, 1_001_800.0)
    assert not seen.seen_between(key_hash("lumio|x:1"), 1_000_700.0, 1_000_000.0 + 2 * HOUR)


class FakeEvent:
    """An event as far as a table write needs it: the partition and offset it came from."""

    def __init__(self, partition: int, offset: int) -> None:
        self.message = type("Message", (), {"partition": partition, "offset": offset})()


class DictTable(dict):
    """A Faust table as SeenTable uses it: items, writes, pops, and `data` to restore."""

    @property
    def data(self) -> dict:
        return self


def test_the_seen_table_stays_bounded_and_restores_what_it_wrote():
    table = DictTable()
    records = SeenTable(table, HOUR, max_keys=10_000)
    start = 1_000_000.0
    for minute in range(6 * 60):  # six hours of 100 counted pairs a minute
        at = start + 60 * minute
        for n in range(100):
            records.remember(0, f"lumio|x:{minute}:{n}", at)
        records.write({0: FakeEvent(0, minute)}, lambda _event: None)
    kept = records.partition(0).size
    assert kept <= 100 * 80, f"an hour and a few buckets of pairs, not six hours: {kept}"
    assert len(table) <= 80, "the records of expired buckets leave the table (tombstones)"
    restored = SeenTable(table, HOUR, max_keys=10_000)  # a restart: from the table alone
    last = start + 60 * (6 * 60 - 1)
    assert restored.seen_within(0, "lumio|x:359:7", last + 120)
    assert restored.seen_within(0, "lumio|x:320:7", last + 120)
    assert not restored.seen_within(0, "lumio|x:0:7", last + 120)
    assert not restored.seen_within(0, "lumio|x:359:100", last + 120)
