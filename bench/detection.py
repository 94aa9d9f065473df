"""Detector throughput: mentions per second into BrandMonitor, intervals closed per second,
state size, and the series detector on the NAB files. Not part of the test run.

    .venv/bin/python bench/detection.py
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from models.detection import BrandMonitor, DetectorConfig, run_series

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab-realtweets"


def mention(i: int, rng: random.Random) -> dict:
    label = rng.choice(["negative", "neutral", "positive"])
    return {
        "post_key": f"twitter:{i}", "url": f"https://x.com/u/status/{i}",
        "created_at": "2026-11-28T02:12:41+00:00",
        "author": {"handle": f"u{i}", "display_name": f"U {i}", "followers": rng.randint(0, 10**5)},
        "text": rng.choice(["acme battery fires again #acmeleaks", "love the acme kettle",
                            "acme support was slow today", "what is acme doing with prices"]),
        "reach": rng.randint(0, 10**5), "sentiment": {"label": label}, "matched": ["acme"],
    }


def main() -> None:
    rng = random.Random(1)
    config = DetectorConfig(interval_seconds=60)
    monitor = BrandMonitor("acme", "ACME", config)
    mentions = [mention(i, rng) for i in range(50_000)]
    start = time.perf_counter()
    for m in mentions:
        monitor.add_mention(m)
    added = time.perf_counter() - start
    moment = datetime(2026, 11, 28, tzinfo=UTC)
    start = time.perf_counter()
    intervals = 5_000
    for i in range(intervals):
        monitor.add_mention(mentions[i])
        monitor.close_interval(moment + i * timedelta(minutes=1),
                               moment + (i + 1) * timedelta(minutes=1))
    closed = time.perf_counter() - start
    state = json.dumps(monitor.to_state())
    print(f"add_mention: {len(mentions) / added:,.0f} mentions/s")
    print(f"close_interval (1 mention each): {intervals / closed:,.0f} intervals/s")
    print(f"state: {len(state) / 1024:.1f} KiB of JSON")
    if NAB.exists():
        rows = 0
        start = time.perf_counter()
        for path in sorted(NAB.glob("*.csv")):
            lines = path.read_text().splitlines()[1:]
            points = [(datetime.fromisoformat(a), float(b))
                      for a, b in (line.split(",") for line in lines)]
            run_series(points, DetectorConfig(interval_seconds=300))
            rows += len(points)
        print(f"series detector: {rows / (time.perf_counter() - start):,.0f} rows/s")


if __name__ == "__main__":
    main()
