"""Backoff, Retry-After parsing and the per-webhook rate limiter."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from pipeline.notify.base import parse_retry_after, redact
from pipeline.notify.dispatch import RateLimiter, backoff_delay


def test_backoff_doubles_is_capped_and_jittered():
    rng = random.Random(7)
    delays = [[backoff_delay(n, 1.0, 8.0, rng) for n in range(1, 7)] for _ in range(200)]
    for attempt, ceiling in enumerate([1, 2, 4, 8, 8, 8]):
        seen = [d[attempt] for d in delays]
        assert all(ceiling / 2 <= d <= ceiling for d in seen)
        assert max(seen) - min(seen) > ceiling / 4  # really spread out, not a constant


def test_retry_after_in_seconds_or_as_an_http_date():
    now = datetime(2026, 11, 28, 2, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Sat, 28 Nov 2026 02:00:30 GMT", now) == 30.0
    assert parse_retry_after("Sat, 28 Nov 2026 01:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_rate_limiter_spaces_sends_per_key_and_holds_after_429():
    async def scenario():
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(0.2)
        times = []
        for _ in range(3):
            await limiter.acquire("slack:a")
            times.append(loop.time())
        other = loop.time()
        await limiter.acquire("slack:b")  # another webhook is not held up
        assert loop.time() - other < 0.05
        limiter.hold("slack:a", 0.4)
        held = loop.time()
        await limiter.acquire("slack:a")
        return times, loop.time() - held

    times, held_for = asyncio.run(scenario())
    assert [round(b - a, 1) for a, b in zip(times, times[1:], strict=False)] == [0.2, 0.2]
    assert held_for >= 0.39


def test_redact_scrubs_every_secret():
    assert redact("POST https://h/x/T0K3N failed", ("T0K3N", "")) == "POST https://h/x/*** failed"
