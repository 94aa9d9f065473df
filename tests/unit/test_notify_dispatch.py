"""Backoff, Retry-After parsing, the per-webhook rate limiter and the retry window."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

from pipeline.notify.base import NotificationError, parse_retry_after, redact
from pipeline.notify.dispatch import Dispatcher, MemoryAlertSink, RateLimiter, backoff_delay
from pipeline.notify.policy import CLAIMED, LedgerEntry
from pipeline.notify.render import build_message
from pipeline.notify.settings import AlertSettings
from tests.incidents import incident_event


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
            async with limiter.turn("slack:a"):
                times.append(loop.time())
        other = loop.time()
        async with limiter.turn("slack:b"):  # another webhook is not held up
            assert loop.time() - other < 0.05
        limiter.hold("slack:a", 0.4)
        held = loop.time()
        async with limiter.turn("slack:a"):
            return times, loop.time() - held

    times, held_for = asyncio.run(scenario())
    assert [round(b - a, 1) for a, b in zip(times, times[1:], strict=False)] == [0.2, 0.2]
    assert held_for >= 0.39


def test_rate_limiter_counts_the_interval_from_the_end_of_a_slow_send():
    """Slack counts messages as they arrive: a send still on its way when the interval
    has passed holds the next one back, which then waits the whole interval again."""
    async def scenario():
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(0.2)
        starts, ends = [], []

        async def send() -> None:
            async with limiter.turn("slack:a"):
                starts.append(loop.time())
                await asyncio.sleep(0.3)  # a slow answer, longer than the interval
                ends.append(loop.time())

        await asyncio.gather(send(), send())
        return starts, ends

    starts, ends = asyncio.run(scenario())
    assert starts[1] >= ends[0] + 0.19  # not before the first was answered, plus the interval


def test_redact_scrubs_every_secret():
    assert redact("POST https://h/x/T0K3N failed", ("T0K3N", "")) == "POST https://h/x/*** failed"


class VirtualTime:
    """A clock and a sleep that advance together, so an hour of retries takes no time."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class DownUntil:
    """A receiver that answers 503 (optionally with Retry-After) until a given time."""

    name, type, rate_limit_key = "pr-slack", "slack", None

    def __init__(self, time: VirtualTime, up_at: float, retry_after: float | None = None):
        self.time, self.up_at, self.retry_after = time, up_at, retry_after
        self.calls: list[float] = []

    def secrets(self) -> tuple[str, ...]:
        return ()

    async def send(self, message, http) -> int:
        self.calls.append(self.time.now)
        if self.time.now < self.up_at:
            raise NotificationError(
                "HTTP 503: down", retryable=True, status=503, retry_after=self.retry_after
            )
        return 200


def run_delivery(receiver, time, settings=None, since=None):
    sink = MemoryAlertSink()

    async def scenario():
        async with Dispatcher(
            {receiver.name: receiver},
            settings or AlertSettings(),
            sink,
            rng=random.Random(1),
            clock=time.clock,
            sleep=time.sleep,
        ) as dispatcher:
            return await dispatcher.deliver(MESSAGE, receiver.name, since=since)

    return asyncio.run(scenario()), sink


MESSAGE = build_message(incident_event(), "opened", "k:opened:pr-slack", grafana_url="http://g")


def test_a_30_minute_outage_delays_the_message_and_loses_nothing():
    time = VirtualTime()
    start = time.now
    receiver = DownUntil(time, up_at=start + 30 * 60)
    result, sink = run_delivery(receiver, time)
    assert result.outcome == "sent" and sink.dead_letters == []
    assert receiver.calls[-1] - receiver.up_at <= 60  # at most one backoff cap late
    assert max(time.sleeps) <= 60 and len(receiver.calls) > 30  # kept trying all along
    assert [a["outcome"] for a in sink.attempts].count("sent") == 1


def test_the_message_is_dead_lettered_only_at_the_end_of_the_window():
    time = VirtualTime()
    start = time.now
    receiver = DownUntil(time, up_at=float("inf"))
    settings = AlertSettings(give_up_after_s=600)
    result, sink = run_delivery(receiver, time, settings)
    assert result.outcome == "failed" and len(sink.dead_letters) == 1
    assert receiver.calls[-1] == start + 600  # a last attempt at the very end
    assert sink.dead_letters[0]["attempts"] == len(receiver.calls)


def test_a_resumed_notification_keeps_its_window():
    time = VirtualTime()
    receiver = DownUntil(time, up_at=float("inf"))
    settings = AlertSettings(give_up_after_s=600)
    # Another worker began this notification 590 s ago and died: 10 s are left, not 600.
    result, _ = run_delivery(receiver, time, settings, since=time.now - 590)
    assert result.outcome == "failed"
    assert receiver.calls[-1] - receiver.calls[0] == 10
    # Past the window already: one attempt still, then the dead letter.
    time2 = VirtualTime()
    receiver2 = DownUntil(time2, up_at=float("inf"))
    result, _ = run_delivery(receiver2, time2, settings, since=time2.now - 3600)
    assert result.outcome == "failed" and len(receiver2.calls) == 1


def test_retry_after_is_honoured_but_not_past_the_window():
    time = VirtualTime()
    start = time.now
    receiver = DownUntil(time, up_at=start + 100, retry_after=40)
    result, _ = run_delivery(receiver, time, AlertSettings(give_up_after_s=600))
    assert result.outcome == "sent"
    assert all(b - a >= 40 for a, b in zip(receiver.calls, receiver.calls[1:], strict=False))
    time2 = VirtualTime()
    late = DownUntil(time2, up_at=float("inf"), retry_after=90)
    result, _ = run_delivery(late, time2, AlertSettings(give_up_after_s=60))
    assert result.outcome == "failed" and len(late.calls) == 1  # asked to wait past the end


def test_max_attempts_still_caps_when_set():
    time = VirtualTime()
    receiver = DownUntil(time, up_at=float("inf"))
    result, _ = run_delivery(receiver, time, AlertSettings(max_attempts=3))
    assert result.outcome == "failed" and len(receiver.calls) == 3


def test_a_claim_resumed_after_its_worker_died_keeps_the_first_claims_time():
    claim = LedgerEntry(
        "k", "i", "r", "opened", 1, CLAIMED, at=500.0, claim="a", until=515.0, first_at=100.0
    )
    assert claim.resumed_by(900.0) == 100.0
    legacy = LedgerEntry("k", "i", "r", "opened", 1, CLAIMED, at=500.0, claim="a", until=515.0)
    assert legacy.resumed_by(900.0) == 500.0  # written before first_at existed
    done = LedgerEntry("k", "i", "r", "opened", 1, "sent", at=500.0)
    assert done.resumed_by(900.0) == 900.0
