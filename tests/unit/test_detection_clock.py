"""Event time: per-partition progress, the watermark across partitions, one brand's clock."""

from __future__ import annotations

import doctest
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

import models.detection.clock as clock_module
from models.detection import BrandClock, SourceProgress, Watermark
from models.detection.clock import IDLE_GRACE, LIVE_GRACE, MAX_INTERVALS_PER_STEP

T0 = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
LATENESS = timedelta(minutes=2)
LONG_AGO = T0 + timedelta(days=30)  # the wall clock during a replay of history


def test_docstring_example_runs() -> None:
    assert doctest.testmod(clock_module).failed == 0


def watermark_of(*reports: dict) -> Watermark:
    watermark = Watermark()
    for report in reports:
        watermark.merge(json.loads(json.dumps(report)))  # as it travels: JSON
    return watermark


def test_the_slowest_busy_partition_holds_the_watermark() -> None:
    source = SourceProgress()
    for partition, minutes in {0: [1, 50, 90], 1: [2, 3, 4], 2: [10, 20, 30]}.items():
        for offset, minute in enumerate(minutes):
            source.observe(partition, offset, T0 + minute * MINUTE, LONG_AGO)
    report = source.report(3, {0: 99, 1: 99, 2: 99}, LONG_AGO)
    assert watermark_of(report).value() == T0 + 3 * MINUTE


def test_a_partition_never_reported_or_never_read_holds_everything() -> None:
    source = SourceProgress()
    source.observe(0, 0, T0, LONG_AGO)
    source.observe(0, 1, T0 + MINUTE, LONG_AGO)
    # Partition 1 of 2 was never reported: no watermark.
    assert watermark_of(source.report(2, {0: 5}, LONG_AGO)).value() is None
    # Reported but its highwater unknown (not fetched yet) and nothing read: still none.
    assert watermark_of(source.report(2, {0: 5, 1: None}, LONG_AGO)).value() is None


def test_a_partition_caught_up_for_the_idle_grace_holds_nothing_back() -> None:
    source = SourceProgress()
    for offset, minute in enumerate([1, 2, 3, 40, 41]):
        source.observe(0, offset, T0 + minute * MINUTE, LONG_AGO)
    source.observe(1, 0, T0 + MINUTE, LONG_AGO)
    source.observe(1, 1, T0 + 2 * MINUTE, LONG_AGO)
    # Partition 1 has read all there is (offset 1, highwater 2), but records came since the
    # last report: it still holds the watermark at its own time.
    watermark = watermark_of(source.report(2, {0: 10, 1: 2}, LONG_AGO))
    assert watermark.value() == T0 + MINUTE
    # Nothing more came: idle from now, but not yet for IDLE_GRACE.
    watermark.merge(source.report(2, {0: 10, 1: 2}, LONG_AGO + MINUTE))
    assert watermark.value() == T0 + MINUTE
    # Still idle IDLE_GRACE later: partition 0 decides.
    watermark.merge(source.report(2, {0: 10, 1: 2}, LONG_AGO + MINUTE + IDLE_GRACE))
    assert watermark.value() == T0 + 40 * MINUTE
    # Everything read everywhere for that long: the newest time reached.
    for later in (2 * MINUTE, 3 * MINUTE, 3 * MINUTE + IDLE_GRACE):
        watermark.merge(source.report(2, {0: 5, 1: 2}, LONG_AGO + later))
    assert watermark.value() == T0 + 40 * MINUTE


def test_a_partition_caught_up_for_a_moment_in_a_backfill_holds_its_place() -> None:
    """The stage upstream writes partition 1 more slowly than the reader reads it: each tick
    finds the reader caught up there, and the posts that follow are older than partition
    0's. None of them may come too late."""
    source, clock = SourceProgress(), BrandClock(60, timedelta(0))
    fast = [T0 + minute * MINUTE for minute in range(0, 120)]
    for offset, moment in enumerate(fast):  # partition 0 read to minute 119 at once
        assert clock.place(moment).kind != "too_late"
        source.observe(0, offset, moment, LONG_AGO)
    watermark = Watermark()
    now = LONG_AGO
    for offset in range(60):  # partition 1 trickles in, one post a second of wall time
        moment = T0 + offset * MINUTE
        assert clock.place(moment).kind != "too_late", offset
        source.observe(1, offset, moment, now)
        watermark.merge(json.loads(json.dumps(source.report(2, {0: 200, 1: offset + 1}, now))))
        if watermark.value() is not None:
            clock.advance(watermark.value())
        now += timedelta(seconds=1)


def test_one_post_dated_a_day_ahead_moves_nothing() -> None:
    source = SourceProgress()
    times = [T0 + k * MINUTE for k in range(10)]
    times.insert(5, T0 + timedelta(hours=23))  # a broken source clock
    for offset, moment in enumerate(times):
        source.observe(0, offset, moment, LONG_AGO)
    report = source.report(1, {0: len(times)}, LONG_AGO)
    assert watermark_of(report).value() == T0 + 9 * MINUTE  # the newest genuine post


def test_no_partition_runs_ahead_of_the_wall_clock() -> None:
    now = T0
    source = SourceProgress()
    for offset in range(3):
        source.observe(0, offset, now + timedelta(hours=5 + offset), now)
    assert watermark_of(source.report(1, {0: 3}, now)).value() == now


def test_a_live_stream_with_nothing_to_read_follows_the_wall_clock() -> None:
    source = SourceProgress()
    source.observe(0, 0, T0 - 3 * MINUTE, T0 - 2 * MINUTE)
    source.observe(0, 1, T0 - 2 * MINUTE, T0 - 2 * MINUTE + timedelta(seconds=1))
    later = T0 + 5 * MINUTE
    assert watermark_of(source.report(1, {0: 2}, later)).value() == later - LIVE_GRACE
    # Still records to read: the posts decide, not the wall clock.
    assert watermark_of(source.report(1, {0: 9}, later)).value() == T0 - 3 * MINUTE


def test_a_replay_of_history_never_follows_the_wall_clock() -> None:
    source = SourceProgress()
    for offset in range(3):
        source.observe(0, offset, T0 + offset * MINUTE, LONG_AGO)
    assert watermark_of(source.report(1, {0: 3}, LONG_AGO)).value() == T0 + MINUTE


def test_reports_of_two_workers_merge_whatever_their_order() -> None:
    """Worker A held partition 1 and was caught up; after a rebalance worker B holds it and
    has records to read. A's stale report arriving last must not count it as caught up."""
    a, b = SourceProgress(), SourceProgress()
    for offset, minute in enumerate([1, 2, 3]):
        a.observe(0, offset, T0 + minute * MINUTE, LONG_AGO)
        a.observe(1, offset, T0 + minute * MINUTE, LONG_AGO)
    old = a.report(2, {0: 10, 1: 3}, LONG_AGO)
    for offset, minute in enumerate([30, 31, 32]):
        b.observe(0, offset, T0 + minute * MINUTE, LONG_AGO)
    new = b.report(2, {0: 10, 1: 7}, LONG_AGO + MINUTE)  # partition 1: unread records
    for order in ((old, new), (new, old)):
        assert watermark_of(*order).value() == T0 + 2 * MINUTE


def test_watermark_state_round_trips() -> None:
    source = SourceProgress()
    for offset, minute in enumerate([1, 2, 3]):
        source.observe(1, offset, T0 + minute * MINUTE, LONG_AGO)
    watermark = watermark_of(source.report(2, {1: 3}, LONG_AGO))
    restored = Watermark.from_state(json.loads(json.dumps(watermark.to_state())))
    assert restored.to_state() == watermark.to_state()


@pytest.mark.parametrize("report", [{}, {"partitions": 0, "at": T0.isoformat(), "progress": {}},
                                    {"partitions": 2, "at": "x", "progress": {}},
                                    {"partitions": 2, "at": T0.isoformat(),
                                     "progress": {"0": {"time": 3}}}])
def test_malformed_reports_are_refused(report: dict) -> None:
    with pytest.raises(ValueError):
        Watermark().merge(report)


def test_mentions_are_placed_by_their_time_and_never_move_the_clock() -> None:
    clock = BrandClock(60, LATENESS)
    assert clock.place(T0 + timedelta(hours=23)).kind == "held"  # before any watermark
    clock.advance(T0 + 10 * MINUTE)
    assert clock.open_start == T0 + 10 * MINUTE
    assert clock.place(T0 + 10 * MINUTE + timedelta(seconds=59)).kind == "open"
    placed = clock.place(T0 + 11 * MINUTE)
    assert placed.kind == "held" and placed.start == T0 + 11 * MINUTE
    assert clock.place(T0 + 8 * MINUTE).kind == "late"  # within the allowed lateness
    assert clock.place(T0 + 8 * MINUTE - timedelta(seconds=1)).kind == "too_late"
    assert clock.place(T0 + timedelta(hours=23)).kind == "held"
    assert clock.open_start == T0 + 10 * MINUTE  # none of that moved it


def test_held_intervals_are_closed_in_order_with_their_mentions() -> None:
    clock = BrandClock(60, LATENESS)
    for minute in (3, 1, 7):
        clock.hold(T0 + minute * MINUTE)
    closed = clock.advance(T0 + 5 * MINUTE)
    assert [(i.start, i.held) for i in closed] == [
        (T0 + k * MINUTE, k in (1, 3)) for k in range(1, 5)]
    assert all(i.end == i.start + MINUTE for i in closed)
    assert not clock.take_open_held()  # minute 5 holds nothing
    closed = clock.advance(T0 + 7 * MINUTE + timedelta(seconds=30))
    assert [i.start for i in closed] == [T0 + 5 * MINUTE, T0 + 6 * MINUTE]
    assert clock.open_start == T0 + 7 * MINUTE and clock.take_open_held()
    assert clock.advance(T0) == []  # a watermark that went back closes nothing


def test_a_long_silence_is_skipped_but_not_past_held_mentions() -> None:
    clock = BrandClock(60, LATENESS, open_start=T0)
    clock.hold(T0 + timedelta(days=2))
    closed = clock.advance(T0 + timedelta(days=5))
    starts = [i.start for i in closed]
    assert starts[0] == T0 and T0 + timedelta(days=2) in starts
    assert [i.held for i in closed].count(True) == 1
    assert len(closed) == 2 + 2 * (MAX_INTERVALS_PER_STEP - 1)  # two long silences
    assert clock.open_start == T0 + timedelta(days=5)


def test_clock_state_round_trips() -> None:
    clock = BrandClock(60, LATENESS)
    clock.hold(T0 + 3 * MINUTE)
    clock.advance(T0 + MINUTE)
    restored = BrandClock.from_state(json.loads(json.dumps(clock.to_state())), 60, LATENESS)
    assert restored.to_state() == clock.to_state()
    assert restored.open_start == T0 + MINUTE


def test_a_full_speed_backfill_loses_nothing() -> None:
    """Four partitions read at very different speeds (one drained before another starts):
    with ticks after each batch, no mention is ever too late and every one is counted in
    its own interval."""
    rng = random.Random(3)
    posts = sorted(T0 + timedelta(seconds=rng.randrange(3 * 86400)) for _ in range(4000))
    partitions: dict[int, list[tuple[int, datetime]]] = {p: [] for p in range(4)}
    for moment in posts:
        part = partitions[rng.randrange(4)]
        part.append((len(part), moment))
    source, clock = SourceProgress(), BrandClock(60, timedelta(0))
    counted: dict[datetime, int] = {}
    cursors = dict.fromkeys(partitions, 0)
    while any(cursors[p] < len(partitions[p]) for p in partitions):
        partition = rng.choice([p for p in partitions if cursors[p] < len(partitions[p])])
        batch = partitions[partition][cursors[partition]:cursors[partition] + rng.randint(1, 900)]
        cursors[partition] += len(batch)
        for offset, moment in batch:  # the mention, then the reader's progress
            placed = clock.place(moment)
            assert placed.kind != "too_late"
            if placed.kind == "held":
                clock.hold(placed.start)
            key = placed.start or clock.open_start
            counted[key] = counted.get(key, 0) + 1
            source.observe(partition, offset, moment, LONG_AGO)
        highwaters = {p: len(partitions[p]) for p in partitions}
        watermark = watermark_of(source.report(4, highwaters, LONG_AGO))
        if watermark.value() is not None:
            clock.advance(watermark.value())
    assert sum(counted.values()) == len(posts)
    expected: dict[datetime, int] = {}
    for moment in posts:
        start = moment.replace(second=0)
        expected[start] = expected.get(start, 0) + 1
    assert counted == expected


def test_the_old_clock_switch_is_accepted_and_ignored_with_a_warning(monkeypatch, caplog) -> None:
    from pipeline.detect_settings import DetectionSettings

    monkeypatch.setenv("VIGIE_DETECT_CLOCK", "event")
    with caplog.at_level("WARNING"):
        settings = DetectionSettings.from_env()
    assert "VIGIE_DETECT_CLOCK is ignored" in caplog.text
    assert not hasattr(settings, "clock")


def test_on_a_live_stream_an_empty_partition_holds_nothing_back() -> None:
    """A brand's posts all land on one partition; the others never had a post. On a live
    stream they must not keep its intervals from closing (in a replay they wait)."""
    now = T0 + 10 * MINUTE
    source = SourceProgress()
    source.observe(0, 0, now - 2 * MINUTE, now)
    source.observe(0, 1, now - MINUTE, now)
    watermark = watermark_of(source.report(3, {0: 2, 1: 0, 2: 0}, now))
    assert watermark.value() == now - LIVE_GRACE
    replay = SourceProgress()
    replay.observe(0, 0, T0, LONG_AGO)
    replay.observe(0, 1, T0 + MINUTE, LONG_AGO)
    assert watermark_of(replay.report(3, {0: 2, 1: 0, 2: 0}, LONG_AGO)).value() is None
