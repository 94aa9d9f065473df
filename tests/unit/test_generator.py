from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from pipeline.generator import BrandProfile, Generator, Scenario, daily_rhythm
from pipeline.schema import validate_post
from pipeline.watchlist import parse_watchlist

BRANDS = [
    BrandProfile("acme", ("ACME", "Acme Corp"), ("#acme",), ("@acme",), base_per_minute=10),
    BrandProfile("lumio", ("Lumio",), ("#lumio",), ("@lumio",), base_per_minute=2),
]
WATCHLIST = parse_watchlist("""
brands:
  - {id: acme, name: ACME, aliases: [Acme Corp], handles: ["@acme"], hashtags: ["#acme"]}
  - {id: lumio, name: Lumio, handles: ["@lumio"], hashtags: ["#lumio"]}
""")
NOON = datetime(2026, 3, 3, 12, 0, tzinfo=UTC)


def stream(minutes, scenarios=(), seed=1, start=NOON):
    return list(Generator(BRANDS, start, seed=seed, scenarios=list(scenarios)).posts(minutes))


def test_same_seed_same_stream_and_every_post_is_valid_and_matches_its_brand():
    first, second = stream(20), stream(20)
    assert first == second
    assert first != stream(20, seed=2)
    for post in first:
        clean, errors = validate_post(post, now=NOON + timedelta(days=1))
        assert errors == [], errors
        assert WATCHLIST.match(clean["text"]), clean["text"]
    times = [post["created_at"] for post in first]
    assert times == sorted(times), "posts come in created_at order"


def test_daily_rhythm_is_quiet_at_night_and_busy_in_the_evening():
    night = daily_rhythm(datetime(2026, 3, 3, 4, tzinfo=UTC))
    evening = daily_rhythm(datetime(2026, 3, 3, 20, tzinfo=UTC))
    assert evening > 4 * night
    quiet = stream(60, start=datetime(2026, 3, 3, 3, tzinfo=UTC))
    busy = stream(60, start=datetime(2026, 3, 3, 19, 30, tzinfo=UTC))
    assert len(busy) > 3 * len(quiet)


def test_reshares_and_influencers_exist():
    posts = stream(120)
    reshares = [p for p in posts if p["reshare_of"]]
    assert 0.1 < len(reshares) / len(posts) < 0.4
    followers = sorted(p["author"]["followers"] for p in posts)
    assert followers[len(followers) // 2] < 1000 < 100_000 < followers[-1]


def test_a_wikirevelation_starts_with_one_post_and_spreads_to_thousands_in_minutes():
    leak = Scenario("wikirevelation", "lumio", start_minute=30, duration_minutes=40,
                    peak_per_minute=400)
    posts = stream(70, [leak])
    lumio_leak = [p for p in posts if "Leaks" in p["text"]]
    assert lumio_leak[0]["created_at"] >= (NOON + timedelta(minutes=30)).isoformat()
    root = lumio_leak[0]
    assert root["reshare_of"] is None
    reshares_of_root = [p for p in lumio_leak if p["reshare_of"] == f"twitter:{root['id']}"]
    assert len(reshares_of_root) > 100
    per_minute = Counter(p["created_at"][:16] for p in lumio_leak)
    first_minutes = [per_minute[(NOON + timedelta(minutes=m)).isoformat()[:16]]
                     for m in range(30, 33)]
    assert sum(first_minutes) < 20, "it starts small"
    assert len(lumio_leak) > 2000, "and reaches thousands within the scenario"
    assert max(per_minute.values()) > 300
    assert any(p["author"]["followers"] > 100_000 for p in lumio_leak), "influencers join"
