"""Waiting between attempts: exponential backoff with jitter, and what a rate-limit
answer asks for (`Retry-After`, remaining requests)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from pipeline.sources.errors import TransientSourceError

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "DEFAULT_POLICIES",
    "read_within",
    "remaining_requests",
    "retry_after_seconds",
]


@dataclass(frozen=True)
class BackoffPolicy:
    """Delay before attempt n (1-based): initial * factor**(n-1), capped; linear if factor==1
    with `step` (the X stream's documented network backoff grows by 250 ms each time)."""

    initial: float
    maximum: float
    factor: float = 2.0
    step: float = 0.0

    def delay(self, attempt: int) -> float:
        if attempt <= 0:
            return 0.0
        if self.factor == 1.0:
            raw = self.initial + self.step * (attempt - 1)
        else:
            raw = self.initial * self.factor ** min(attempt - 1, 60)
        return min(raw, self.maximum)


DEFAULT_POLICIES: dict[str, BackoffPolicy] = {
    "network": BackoffPolicy(1.0, 60.0),
    "http": BackoffPolicy(5.0, 320.0),
    "rate_limit": BackoffPolicy(60.0, 900.0),
}


class Backoff:
    """Consecutive-failure counter per kind, with "equal jitter" (half fixed, half random)
    so that many connectors restarting together do not reconnect in lockstep."""

    def __init__(
        self,
        policies: Mapping[str, BackoffPolicy],
        scale: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.policies = dict(policies)
        self.scale = scale
        self.attempts = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self.attempts = 0

    def next_delay(self, kind: str) -> float:
        self.attempts += 1
        policy = self.policies.get(kind) or self.policies["network"]
        base = policy.delay(self.attempts) * self.scale
        return base / 2 + self._rng.uniform(0, base / 2)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long a rate-limited answer asks us to wait, from whichever header the platform uses.

    - `Retry-After`: seconds or an HTTP date (RFC 9110);
    - `x-rate-limit-reset` (X): Unix time in seconds;
    - `X-RateLimit-Reset`: Reddit sends seconds until the end of the period, Mastodon an
      ISO 8601 time; a number larger than 10**9 is read as a Unix time.
    Returns None when no header says anything usable.
    """
    now = time.time() if now is None else now
    lowered = {k.lower(): v for k, v in headers.items()}
    value = lowered.get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    for name in ("x-rate-limit-reset", "x-ratelimit-reset"):
        value = lowered.get(name)
        if not value:
            continue
        value = value.strip()
        try:
            number = float(value)
        except ValueError:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return max(0.0, moment.timestamp() - now)
        return max(0.0, number - now) if number > 1e9 else max(0.0, number)
    return None


async def read_within(read: Awaitable[bytes], seconds: float, silence: str) -> bytes:
    """One read from a stream that must never go quiet: a stall is a transient error, so
    the runner reconnects instead of waiting forever on a half-dead connection."""
    try:
        return await asyncio.wait_for(read, timeout=seconds)
    except TimeoutError:
        raise TransientSourceError(f"{silence} for {seconds:.0f} s") from None


def remaining_requests(headers: Mapping[str, str]) -> float | None:
    """`x-rate-limit-remaining` / `X-RateLimit-Remaining` as a number (Reddit sends floats)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("x-rate-limit-remaining", "x-ratelimit-remaining"):
        value = lowered.get(name)
        if value is not None:
            with contextlib.suppress(ValueError):
                return float(value)
    return None
