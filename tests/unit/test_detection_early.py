"""Early firing (`judge_open`) and held mentions (`hold_mention`, `open_held`)."""

from __future__ import annotations

import copy
import json
import random

import pytest

from models.detection import BrandMonitor, DetectorConfig, HeldTally
from tests.unit.test_detection_monitor import (
    CONFIG,
    MINUTE,
    START,
    WAVE_START,
    mention,
    minute_mentions,
)


def feed(monitor: BrandMonitor, minutes: list[list[dict]], early: bool) -> list[tuple[int, dict]]:
    """Each minute's mentions one by one (judging the open interval after each when `early`),
    then its close; returns (minute index, event) pairs."""
    out = []
    for index, posts in enumerate(minutes):
        start = START + index * MINUTE
        for post in posts:
            monitor.add_mention(post)
            if early:
                out += [(index, event) for event in monitor.judge_open(start, start)]
        out += [(index, event) for event in monitor.close_interval(start, start + MINUTE)]
    return out


def scripted(seed: int, wave_size: int) -> list[list[dict]]:
    rng = random.Random(seed)
    minutes = [minute_mentions(index, rng) for index in range(WAVE_START + 60)]
    wave = minutes[WAVE_START:WAVE_START + 12]
    for index, posts in enumerate(wave):  # waves from barely visible to the demo's leak
        del posts[len(posts) - 40:]
        for k in range(int(wave_size * min(1.0, 2 ** (index - 4)))):
            posts.append(mention(10**6 + index * 1000 + k, START + (WAVE_START + index) * MINUTE,
                                 "negative", "acme lied about battery fires", 100))
        rng.shuffle(posts)
    return minutes


def test_early_firing_opens_the_same_incident_in_the_same_interval_sooner() -> None:
    minutes = scripted(1, 40)
    closed_only = feed(BrandMonitor("acme", "ACME", CONFIG), minutes, early=False)
    early = feed(BrandMonitor("acme", "ACME", CONFIG), minutes, early=True)
    opened = [(index, event) for index, event in closed_only if event["event"] == "opened"]
    opened_early = [(index, event) for index, event in early if event["event"] == "opened"]
    assert len(opened) == len(opened_early) == 1
    assert opened_early[0][0] == opened[0][0]  # in the same interval...
    assert opened_early[0][1]["incident_id"] == opened[0][1]["incident_id"]
    # ...before it closed: on fewer posts than the whole interval holds.
    assert opened_early[0][1]["observed"]["negative"] < opened[0][1]["observed"]["negative"]
    assert opened_early[0][1]["top_posts"] and opened_early[0][1]["surging_terms"]
    # The rest of the incident is the same: one resolution, numbered events.
    kinds = [event["event"] for _, event in early]
    assert kinds.count("opened") == 1 and kinds[-1] == "resolved"
    assert [event["sequence"] for _, event in early] == list(range(1, len(early) + 1))
    assert early[-1][1]["resolved_at"] == closed_only[-1][1]["resolved_at"]


def test_early_firing_never_opens_where_the_close_would_not() -> None:
    """The judgement of a partial interval is the close's test on fewer posts: it may open
    sooner, never elsewhere. Checked on waves from too small to see to the demo's size."""
    for seed, wave_size in [(2, 0), (3, 3), (4, 6), (5, 10), (6, 20), (7, 80), (8, 300)]:
        minutes = scripted(seed, wave_size)
        closed_only = feed(BrandMonitor("acme", "ACME", CONFIG), minutes, early=False)
        early = feed(BrandMonitor("acme", "ACME", CONFIG), minutes, early=True)
        opened = [(i, e["incident_id"]) for i, e in closed_only if e["event"] == "opened"]
        opened_early = [(i, e["incident_id"]) for i, e in early if e["event"] == "opened"]
        assert opened_early == opened, (seed, wave_size)


def test_early_firing_survives_a_restart_mid_interval() -> None:
    minutes = scripted(1, 40)
    monitor = BrandMonitor("acme", "ACME", CONFIG)
    feed(monitor, minutes[:WAVE_START + 2], early=True)
    state = json.loads(json.dumps(monitor.to_state()))
    again = BrandMonitor.from_state(state, CONFIG)
    rest = minutes[WAVE_START + 2:]
    assert [e for _, e in feed(monitor, rest, early=True)] == \
        [e for _, e in feed(again, rest, early=True)]


@pytest.mark.parametrize("stored_between_mentions", [True, False])
def test_held_mentions_count_as_if_they_had_come_in_their_interval(
        stored_between_mentions: bool) -> None:
    rng = random.Random(9)
    minutes = [minute_mentions(index, rng) for index in range(WAVE_START + 20)]
    direct = BrandMonitor("acme", "ACME", CONFIG)
    holding = BrandMonitor("acme", "ACME", CONFIG)
    for index, posts in enumerate(minutes):
        start = START + index * MINUTE
        tally = None
        for post in posts:
            direct.add_mention(post)
            if stored_between_mentions and tally is not None:
                # Written and read back, as the agent's table does between batches.
                tally = HeldTally.from_state(json.loads(json.dumps(tally.to_state())))
            tally = holding.hold_mention(tally, post)
        if tally is not None:
            holding.open_held(tally)
        assert direct.close_interval(start, start + MINUTE) == \
            holding.close_interval(start, start + MINUTE)
    assert direct.to_state() == holding.to_state()


def test_a_held_tally_adds_to_mentions_already_counted() -> None:
    posts = minute_mentions(WAVE_START + 3, random.Random(4))
    one, two = BrandMonitor("acme", "ACME", CONFIG), BrandMonitor("acme", "ACME", CONFIG)
    for post in posts:
        one.add_mention(post)
    half = len(posts) // 2
    for post in posts[:half]:
        two.add_mention(post)
    tally = None
    for post in posts[half:]:
        tally = two.hold_mention(tally, copy.deepcopy(post))
    two.open_held(tally)
    counted_once, merged = one.to_state()["current"], two.to_state()["current"]
    # Storylines of two halves merge into fewer, wider ones; the posts they hold are the same.
    lines_once, lines_merged = counted_once.pop("storylines"), merged.pop("storylines")
    assert counted_once == merged
    for key in ("posts", "negative", "reach"):
        assert sum(line[key] for line in lines_once["storylines"]) + \
            (lines_once["other_posts"] if key == "posts" else 0) == \
            sum(line[key] for line in lines_merged["storylines"]) + \
            (lines_merged["other_posts"] if key == "posts" else 0)


def test_early_firing_respects_a_brand_with_a_one_interval_window() -> None:
    config = DetectorConfig(interval_seconds=600, window_minutes=10, quiet_minutes=30)
    monitor = BrandMonitor("acme", "ACME", config)
    assert config.window_intervals == 1
    assert monitor.judge_open(START, START) == []
