"""BrandMonitor: incident events from mentions, their record shape, and state round-trips."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta

import pytest

from models.detection import BrandMonitor, DetectorConfig

START = datetime(2026, 11, 26, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
CONFIG = DetectorConfig(interval_seconds=60, quiet_minutes=30)
EVENT_KEYS = {
    "schema_version", "incident_id", "brand", "brand_name", "event", "sequence", "severity",
    "escalated", "opened_at", "updated_at", "resolved_at", "interval_seconds", "summary",
    "observed", "expected", "score", "window_minutes", "sentiment", "top_posts",
    "surging_terms", "storylines", "trend", "status", "subsided_at", "peak_negative", "peak_at",
}
POST_KEYS = {"post_key", "url", "author_handle", "author_name", "followers", "text",
             "sentiment", "created_at"}
WAVE_START = 24 * 60  # the wave starts after one day of ordinary chatter
WAVE_MINUTES = 12

NORMAL_TEXTS = ["loving my new acme kettle", "acme delivery was fine today",
                "anyone tried the acme blender", "acme customer service answered quickly"]
WAVE_TEXTS = ["#acmeleaks shows acme hid the battery fires", "acme lied about battery fires",
              "boycott acme now #acmeleaks"]


def mention(i: int, minute: datetime, label: str, text: str, followers: int,
            brand: str = "acme") -> dict:
    return {
        "schema_version": 1, "brand": brand, "post_key": f"twitter:{i}",
        "platform": "twitter", "post_id": str(i), "url": f"https://x.com/u/status/{i}",
        "created_at": (minute + timedelta(seconds=5)).isoformat(), "language": "en",
        "author": {"handle": f"user{i}", "display_name": f"User {i}", "followers": followers,
                   "verified": False},
        "text": text, "reach": followers, "reshare_of": None,
        "sentiment": {"label": label, "scores": {label: 0.9}},
        "model": "test", "matched": ["acme"],
    }


def minute_mentions(index: int, rng: random.Random) -> list[dict]:
    """Ordinary chatter (about 2 a minute, 20% negative) plus, in the wave, 40 negative a
    minute, one of them from an account with two million followers."""
    minute = START + index * MINUTE
    posts = []
    for k in range(rng.choice([0, 1, 2, 2, 3, 4])):
        label = "negative" if rng.random() < 0.2 else rng.choice(["neutral", "positive"])
        posts.append(mention(index * 1000 + k, minute, label, rng.choice(NORMAL_TEXTS),
                             rng.randint(10, 5000)))
    if WAVE_START <= index < WAVE_START + WAVE_MINUTES:
        for k in range(40):
            followers = 2_000_000 if k == 0 and index == WAVE_START + 2 else rng.randint(10, 9000)
            posts.append(mention(index * 1000 + 100 + k, minute, "negative",
                                 rng.choice(WAVE_TEXTS), followers))
    return posts


def resumed(monitor: BrandMonitor, window_apart: bool = False) -> BrandMonitor:
    """The monitor restarted from its JSON state; `window_apart`: the state names its
    window's intervals, which are saved one by one beside it (as the detect agent does)."""
    state = json.loads(json.dumps(monitor.to_state(window_by_start=window_apart)))
    intervals = {start: json.loads(json.dumps(monitor.interval_state(start)))
                 for start in monitor.window_starts()} if window_apart else None
    return BrandMonitor.from_state(state, CONFIG, intervals)


def run(monitor: BrandMonitor, first: int, last: int, rng: random.Random,
        pause_at: int | None = None, window_apart: bool = False
        ) -> tuple[list[dict], BrandMonitor]:
    """Feed minutes [first, last); at `pause_at` restart from JSON state mid-interval."""
    events = []
    for index in range(first, last):
        posts = minute_mentions(index, rng)
        for n, post in enumerate(posts):
            if index == pause_at and n == len(posts) // 2:
                monitor = resumed(monitor, window_apart)
            monitor.add_mention(post)
        minute = START + index * MINUTE
        events.extend(monitor.close_interval(minute, minute + MINUTE))
    return events, monitor


@pytest.fixture(scope="module")
def reference() -> list[dict]:
    events, _ = run(BrandMonitor("acme", "ACME", CONFIG), 0, WAVE_START + 90, random.Random(1))
    return events


def test_one_wave_gives_one_incident_opened_then_resolved(reference: list[dict]) -> None:
    kinds = [event["event"] for event in reference]
    assert kinds[0] == "opened" and kinds[-1] == "resolved"
    assert kinds.count("opened") == 1 and kinds.count("resolved") == 1
    assert {event["incident_id"] for event in reference} == {"acme-20261127T0000Z"}
    assert [event["sequence"] for event in reference] == list(range(1, len(reference) + 1))
    opened = reference[0]
    assert opened["opened_at"] == (START + WAVE_START * MINUTE).isoformat()
    assert opened["updated_at"] == (START + (WAVE_START + 1) * MINUTE).isoformat()
    resolved = reference[-1]
    assert resolved["resolved_at"] == resolved["updated_at"]
    ended = datetime.fromisoformat(resolved["resolved_at"])
    # The quiet period (30 min) runs from the opening; the wave is over by then.
    assert ended == START + (WAVE_START + 1 + 30) * MINUTE


def test_events_follow_the_incident_record(reference: list[dict]) -> None:
    for event in reference:
        assert set(event) == EVENT_KEYS
        assert event["schema_version"] == 3 and event["brand"] == "acme"
        assert event["severity"] in ("info", "warning", "critical")
        assert set(event["observed"]) == set(event["expected"]) == {
            "mentions", "negative", "negative_share", "reach_negative"}
        assert set(event["sentiment"]) == {"negative", "neutral", "positive"}
        assert 0.0 <= event["score"] <= 1.0
        assert event["window_minutes"] == 10 and event["interval_seconds"] == 60
        assert all(set(post) == POST_KEYS for post in event["top_posts"])
        assert len(event["trend"]) <= CONFIG.trend_intervals
        assert event["trend"][-1]["start"] < event["updated_at"]
        assert all(point["expected_negative"] >= 0 for point in event["trend"][:-1])
        json.dumps(event)  # JSON-serialisable as is


def test_incident_explains_itself(reference: list[dict]) -> None:
    opened = reference[0]
    assert opened["observed"]["negative"] >= 40
    assert opened["observed"]["negative"] > 5 * opened["expected"]["negative"]
    assert opened["score"] > 0.99
    assert re.fullmatch(r"\d+ negative posts in 10 min, [\d.]+x normal; reach [\d.]+k?",
                        opened["summary"]), opened["summary"]
    terms = [term["term"] for term in opened["surging_terms"]]
    assert "#acmeleaks" in terms and "acme" not in terms
    # Later, the two-million-follower post leads the evidence, and the severity is critical
    # (almost only negative posts, and a reach over a million).
    later = [e for e in reference if e["top_posts"] and e["top_posts"][0]["followers"] ==
             2_000_000]
    assert later, "the influencer's post should appear in an update"
    assert later[0]["severity"] == "critical"
    assert later[0]["observed"]["reach_negative"] >= 2_000_000
    assert re.search(r"reach \d\.\dM$", later[0]["summary"]), later[0]["summary"]


def test_restart_mid_incident_changes_nothing(reference: list[dict]) -> None:
    for pause in (WAVE_START + 3, WAVE_START + WAVE_MINUTES + 5):
        events, _ = run(BrandMonitor("acme", "ACME", CONFIG), 0, WAVE_START + 90,
                        random.Random(1), pause_at=pause)
        assert events == reference


def test_restart_from_a_state_whose_window_is_saved_apart_changes_nothing(
        reference: list[dict]) -> None:
    for pause in (WAVE_START + 3, WAVE_START + WAVE_MINUTES + 5):
        events, _ = run(BrandMonitor("acme", "ACME", CONFIG), 0, WAVE_START + 90,
                        random.Random(1), pause_at=pause, window_apart=True)
        assert events == reference


def test_a_state_that_names_its_window_leaves_it_out_and_resumes_whole() -> None:
    _, monitor = run(BrandMonitor("acme", "ACME", CONFIG), 0, WAVE_START + 5,
                     random.Random(1))
    full = json.dumps(monitor.to_state())
    named = monitor.to_state(window_by_start=True)
    assert "window" not in named and len(named["window_starts"]) == CONFIG.window_intervals
    # The window's intervals (half of this state during the wave) are left out of it.
    window_bytes = sum(len(json.dumps(monitor.interval_state(start)))
                       for start in named["window_starts"])
    assert window_bytes > len(full) / 3
    assert len(json.dumps(named)) < len(full) - 0.95 * window_bytes
    assert json.dumps(resumed(monitor, window_apart=True).to_state()) == full
    # A state saved whole by an earlier version (1) still loads.
    older = {**json.loads(full), "state_version": 1}
    assert json.dumps(BrandMonitor.from_state(older, CONFIG).to_state()) == full
    # An interval the state names but nobody saved is a malformed state, not a gap.
    intervals = {start: monitor.interval_state(start) for start in named["window_starts"]}
    del intervals[named["window_starts"][0]]
    with pytest.raises(ValueError, match="malformed"):
        BrandMonitor.from_state(json.loads(json.dumps(named)), CONFIG, intervals)


def test_quiet_brand_with_a_few_negative_posts_opens_nothing() -> None:
    monitor = BrandMonitor("tiny", "Tiny", CONFIG)
    events = []
    for index in range(6 * 60):
        minute = START + index * MINUTE
        if index % 97 == 0 or index == 200:  # now and then one post; at 200, three at once
            for k in range(3 if index == 200 else 1):
                monitor.add_mention(mention(index * 10 + k, minute, "negative", "tiny meh", 50,
                                            brand="tiny"))
        events.extend(monitor.close_interval(minute, minute + MINUTE))
    assert events == []


def test_bad_mention_is_refused_and_counts_nothing() -> None:
    monitor = BrandMonitor("acme", "ACME", CONFIG)
    good = mention(1, START, "negative", "acme bad", 10)
    for broken in ({**good, "sentiment": {"label": "angry"}}, {**good, "reach": -1},
                   {**good, "reach": "many"}, "not a dict"):
        with pytest.raises(ValueError):
            monitor.add_mention(broken)  # type: ignore[arg-type]
    assert monitor.to_state()["current"]["mentions"] == 0


def test_malformed_state_is_refused() -> None:
    with pytest.raises(ValueError):
        BrandMonitor.from_state({"state_version": 1, "brand": "acme"}, CONFIG)
    with pytest.raises(ValueError):
        BrandMonitor.from_state({"state_version": 99}, CONFIG)


def test_second_surge_in_an_open_incident_is_announced_as_an_update() -> None:
    config = DetectorConfig(interval_seconds=60, quiet_minutes=120)
    monitor = BrandMonitor("acme", "ACME", config)
    rng = random.Random(3)
    surges = set(range(WAVE_START, WAVE_START + 10)) | set(range(WAVE_START + 50,
                                                                 WAVE_START + 55))
    events = []
    for index in range(WAVE_START + 300):
        minute = START + index * MINUTE
        for k in range(rng.choice([1, 2, 3])):
            monitor.add_mention(mention(index * 100 + k, minute, "neutral", "acme ok", 100))
        if index in surges:
            for k in range(40):
                monitor.add_mention(mention(index * 100 + 10 + k, minute, "negative",
                                            "#acmeleaks acme lied", 500))
        events.extend(monitor.close_interval(minute, minute + MINUTE))
    assert {e["incident_id"] for e in events} == {"acme-20261127T0000Z"}
    kinds = [e["event"] for e in events]
    assert kinds.count("opened") == 1 and kinds.count("resolved") == 1
    second = [e for e in events if e["updated_at"] > (START + (WAVE_START + 50) *
                                                      MINUTE).isoformat()]
    assert second[0]["event"] == "updated" and not second[0]["escalated"]  # threaded, no page
    assert second[0]["updated_at"] == (START + (WAVE_START + 51) * MINUTE).isoformat()
    # Resolved at the first calm interval once the two-hour quiet period since the
    # opening is over.
    assert events[-1]["resolved_at"] == (START + (WAVE_START + 1 + 120) * MINUTE).isoformat()


def test_mention_for_another_brand_is_refused() -> None:
    monitor = BrandMonitor("acme", "ACME", CONFIG)
    with pytest.raises(ValueError, match="globex"):
        monitor.add_mention({**mention(1, START, "negative", "x", 1), "brand": "globex"})



# A 2-hour quiet period: the wave (12 min) is over long before the incident may resolve.
LONG_QUIET = DetectorConfig(interval_seconds=60, quiet_minutes=120)


@pytest.fixture(scope="module")
def held() -> list[dict]:
    events, _ = run(BrandMonitor("acme", "ACME", LONG_QUIET), 0, WAVE_START + 150,
                    random.Random(1))
    return events


def test_the_wave_subsides_before_the_quiet_period_ends(held: list[dict]) -> None:
    """The wave leaves the 10-minute window, the window stays calm for 10 more minutes:
    a `subsided` event (no page) long before the resolution, and nothing between them."""
    from models.detection.monitor import pages_someone

    kinds = [event["event"] for event in held]
    assert kinds.count("subsided") == 1 and kinds.count("opened") == 1
    at = kinds.index("subsided")
    subsided = held[at]
    assert kinds[at + 1:] == ["resolved"]
    assert not pages_someone(subsided)
    assert subsided["status"] == "subsided" and subsided["resolved_at"] is None
    assert all(e["status"] == "active" for e in held[:at])
    # Calm since the window was first judged calm (the wave's last minute had left it),
    # told once it had stayed calm for a whole window.
    last_wave_minute = START + (WAVE_START + WAVE_MINUTES - 1) * MINUTE
    assert subsided["subsided_at"] == (last_wave_minute + 11 * MINUTE).isoformat()
    assert subsided["updated_at"] == (last_wave_minute + 20 * MINUTE).isoformat()
    # The peak of the window, even when no event reported it (12 minutes of about 40
    # negative posts a minute, at its fullest when the window held the wave's 10 minutes).
    peak = subsided["peak_negative"]
    assert peak >= max(e["observed"]["negative"] for e in held) and peak >= 400
    assert subsided["peak_at"] == (START + (WAVE_START + 10) * MINUTE).isoformat()
    assert subsided["summary"].startswith("Subsided: ")
    assert subsided["summary"].endswith(f"peak was {peak}")
    # The evidence last reported, not the calm window's.
    assert subsided["top_posts"][0]["followers"] == 2_000_000
    resolved = held[-1]
    assert resolved["status"] == "resolved" and resolved["subsided_at"] == subsided["subsided_at"]
    assert resolved["resolved_at"] == (START + (WAVE_START + 1 + 120) * MINUTE).isoformat()


def test_a_renewed_surge_makes_the_incident_active_again_without_a_page() -> None:
    events, monitor = run(BrandMonitor("acme", "ACME", LONG_QUIET), 0, WAVE_START + 60,
                          random.Random(1))
    assert events[-1]["status"] == "subsided" and monitor.lifecycle.subsided
    rng = random.Random(2)
    renewed = []
    for index in range(WAVE_START + 60, WAVE_START + 64):  # 30 negative posts a minute
        minute = START + index * MINUTE
        for k in range(30):
            monitor.add_mention(mention(index * 1000 + k, minute, "negative",
                                        rng.choice(WAVE_TEXTS), 100))
        renewed += monitor.close_interval(minute, minute + MINUTE)
    first = renewed[0]
    assert (first["event"], first["escalated"], first["status"]) == ("updated", False, "active")
    assert first["subsided_at"] is None and first["incident_id"] == events[0]["incident_id"]
    assert all(e["event"] != "opened" and not e["escalated"] for e in renewed)


def test_a_state_written_before_subsided_existed_resumes() -> None:
    _, monitor = run(BrandMonitor("acme", "ACME", LONG_QUIET), 0, WAVE_START + 60,
                     random.Random(1))
    state = json.loads(json.dumps(monitor.to_state()))
    del state["lifecycle"]["subsided"]
    for key in ("peak_at", "subsided_at"):
        del state["incident"][key]
    resumed = BrandMonitor.from_state(state, LONG_QUIET)
    assert resumed.lifecycle.subsided  # the calm test, as it stood
    later = []
    for index in range(WAVE_START + 60, WAVE_START + 130):
        minute = START + index * MINUTE
        later += resumed.close_interval(minute, minute + MINUTE)
    assert [e["event"] for e in later] == ["resolved"]
