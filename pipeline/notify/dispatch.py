"""Delivery: retries with backoff and jitter, per-receiver timeouts and rate limits.

Every receiver is tried in its own task, each attempt bounded by `timeout_s`, so a slow
or dead receiver only delays itself. A notification is retried until `give_up_after_s`
after its first attempt (an hour by default: receivers' outages last minutes, and a page
lost to one is worse than a late page); `vigie_notifications_pending` shows those
waiting. Every attempt is reported to the sink (`alerts.log` in the worker); the last
failed attempt also goes to the dead letters (`alerts.dlq`).
Errors are already scrubbed of secrets by the receivers; anything unexpected is reduced
to its exception type and scrubbed again here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from pipeline.deadletter import notification_dead_letter
from pipeline.notify import telemetry
from pipeline.notify.base import Delivered, NotificationError, Receiver, redact
from pipeline.notify.render import Message
from pipeline.notify.settings import AlertSettings

__all__ = [
    "AlertSink",
    "AttemptRecord",
    "DeliveryResult",
    "Dispatcher",
    "MemoryAlertSink",
    "RateLimiter",
    "backoff_delay",
]

log = logging.getLogger("vigie.alert")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass(frozen=True)
class AttemptRecord:
    """One notification attempt, as written to `alerts.log` (key: incident id)."""

    key: str
    incident_id: str
    brand: str
    receiver: str
    receiver_type: str
    type: str  # opened | escalated | reminder | resolved | test
    attempt: int
    outcome: str  # sent | retried | failed | silenced
    status: int | None
    error: str | None
    at: str
    duration_s: float

    def to_record(self) -> dict[str, Any]:
        return {"schema_version": 1, **asdict(self)}


@dataclass(frozen=True)
class DeliveryResult:
    key: str
    receiver: str
    receiver_type: str
    outcome: str  # sent | failed | silenced
    attempts: int
    status: int | None = None
    error: str | None = None
    thread: str | None = None  # where the receiver put it (Slack bot: "<channel>/<ts>")

    @property
    def ok(self) -> bool:
        return self.outcome in ("sent", "silenced")


class AlertSink(Protocol):
    async def log_attempt(self, record: dict[str, Any]) -> None: ...

    async def dead_letter(self, record: dict[str, Any]) -> None: ...


class MemoryAlertSink:
    """Keeps records in lists (CLI `alert test`, tests)."""

    def __init__(self) -> None:
        self.attempts: list[dict[str, Any]] = []
        self.dead_letters: list[dict[str, Any]] = []

    async def log_attempt(self, record: dict[str, Any]) -> None:
        self.attempts.append(record)

    async def dead_letter(self, record: dict[str, Any]) -> None:
        self.dead_letters.append(record)


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped.

    The random half spreads retries of many workers hitting one receiver; the fixed half
    keeps a minimum pause so a struggling receiver gets some rest.
    """
    ceiling = min(max_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class RateLimiter:
    """At most one message per `min_interval_s` per key (Slack: ~1 message/s per webhook),
    counted where the receiver counts: at arrival. So one send at a time per key, and the
    next starts `min_interval_s` after the previous one was answered (or failed): spacing
    the starts only would let a request delayed on its way arrive right before the next."""

    def __init__(self, min_interval_s: float, clock: Callable[[], float] = time.monotonic):
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._next_free: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    @asynccontextmanager
    async def turn(self, key: str | None) -> AsyncIterator[None]:
        """`key`'s turn to send, for the duration of the `async with` block (the send,
        whatever its outcome); no limit when `key` is None."""
        if key is None:
            yield
            return
        async with self._locks.setdefault(key, asyncio.Lock()):
            wait = self._next_free.get(key, 0.0) - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                self._next_free[key] = max(self._next_free.get(key, 0.0),
                                           self._clock() + self.min_interval_s)

    def hold(self, key: str | None, seconds: float) -> None:
        """After a 429: nobody sends on this key before Retry-After has passed."""
        if key is None:
            return
        self._next_free[key] = max(self._next_free.get(key, 0.0), self._clock() + seconds)


class Dispatcher:
    """Delivers messages to named receivers; use as `async with Dispatcher(...) as d`."""

    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        settings: AlertSettings,
        sink: AlertSink,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.receivers = dict(receivers)
        self.settings = settings
        self.sink = sink
        self.limiter = RateLimiter(settings.slack_min_interval_s)
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep
        self._http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Dispatcher:
        # No total timeout here: each attempt is bounded by asyncio.wait_for instead.
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _safe(self, write: Callable[[dict[str, Any]], Awaitable[None]], record: dict) -> None:
        # Losing a log line must not lose (or repeat) the notification itself.
        try:
            await write(record)
        except Exception as exc:  # noqa: BLE001
            log.error("could not write alert record %s: %s", record.get("key"), type(exc).__name__)

    def _attempt(
        self,
        message: Message,
        receiver: Receiver,
        attempt: int,
        outcome: str,
        status: int | None,
        error: str | None,
        started: float,
    ) -> AttemptRecord:
        return AttemptRecord(
            key=message.key,
            incident_id=message.incident_id,
            brand=message.brand,
            receiver=receiver.name,
            receiver_type=receiver.type,
            type=message.kind,
            attempt=attempt,
            outcome=outcome,
            status=status,
            error=error,
            at=_iso(self._clock()),
            duration_s=round(time.monotonic() - started, 3),
        )

    async def record_silenced(self, message: Message, receiver_name: str, silence_id: str):
        receiver = self.receivers[receiver_name]
        record = self._attempt(
            message, receiver, 0, "silenced", None, f"silence {silence_id}", time.monotonic()
        )
        await self._safe(self.sink.log_attempt, record.to_record())
        telemetry.count(receiver.name, receiver.type, "silenced")
        log.info("silenced %s (silence %s)", message.key, silence_id)
        return DeliveryResult(message.key, receiver.name, receiver.type, "silenced", 0)

    async def deliver(
        self, message: Message, receiver_name: str, *, since: float | None = None,
        on_sent: Callable[[DeliveryResult], Awaitable[None]] | None = None,
    ) -> DeliveryResult:
        """Send until it is delivered, refused for good, or `give_up_after_s` has passed
        since `since` (the notification's first attempt, epoch seconds; default now), which
        a worker resuming another's notification passes on so the window does not restart.

        Once it is delivered, `on_sent` (the alert service's ledger write) runs first, then
        the receiver's follow-up, if any (`Delivered.follow_up`), once and within
        `timeout_s`: its failure is logged, never retried, since the message itself is
        delivered and recorded.
        """
        receiver = self.receivers.get(receiver_name)
        if receiver is None:
            # The watchlist changed under an open incident: say so, do not crash.
            reason = f"receiver {receiver_name!r} is not configured"
            await self._safe(
                self.sink.dead_letter,
                self._dead_letter(message, receiver_name, "unknown", 0, None, reason),
            )
            return DeliveryResult(message.key, receiver_name, "unknown", "failed", 0, None, reason)
        if self._http is None:
            raise RuntimeError("use the Dispatcher as an async context manager")
        telemetry.pending(receiver.name, receiver.type, +1)
        try:
            result, follow_up = await self._retry(message, receiver, since)
        finally:
            telemetry.pending(receiver.name, receiver.type, -1)
        if on_sent is not None and result.outcome == "sent":
            await on_sent(result)
        if follow_up is not None:
            try:
                await asyncio.wait_for(follow_up(), timeout=self.settings.timeout_s)
            except Exception as exc:  # noqa: BLE001 - delivered already: log, go on
                log.warning("%s to %s: delivered; its follow-up failed (%s)", message.key,
                            receiver.name, redact(type(exc).__name__, receiver.secrets()))
        return result

    async def _retry(
        self, message: Message, receiver: Receiver, since: float | None
    ) -> tuple[DeliveryResult, Callable[[], Awaitable[None]] | None]:
        """The delivery's result, and the receiver's follow-up when it left one."""
        settings = self.settings
        give_up_at = (self._clock() if since is None else since) + settings.give_up_after_s
        error: NotificationError | None = None
        delivery_started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self.limiter.turn(receiver.rate_limit_key):
                    started = time.monotonic()
                    status = await asyncio.wait_for(
                        receiver.send(message, self._http), timeout=settings.timeout_s
                    )
            except TimeoutError:
                error = NotificationError(f"no answer within {settings.timeout_s:g}s",
                                          retryable=True)
            except NotificationError as exc:
                error = exc
            except Exception as exc:  # noqa: BLE001 - a bug or odd input: do not retry it
                error = NotificationError(
                    redact(f"{type(exc).__name__}: {exc}", receiver.secrets())[:300],
                    retryable=False,
                )
            else:
                thread, follow_up = None, None
                if isinstance(status, Delivered):
                    status, thread, follow_up = status.status, status.thread, status.follow_up
                elapsed = time.monotonic() - delivery_started  # retries included
                record = self._attempt(message, receiver, attempt, "sent", status, None, started)
                await self._safe(self.sink.log_attempt, record.to_record())
                telemetry.count(receiver.name, receiver.type, "sent")
                telemetry.observe_delivery(receiver.type, elapsed)
                if message.kind == "opened":
                    telemetry.observe_end_to_end(message.event, self._clock())
                log.info("sent %s to %s (attempt %d)", message.key, receiver.name, attempt)
                return DeliveryResult(
                    message.key, receiver.name, receiver.type, "sent", attempt, status,
                    thread=thread,
                ), follow_up
            delay = self._retry_delay(error, attempt, receiver, give_up_at - self._clock())
            final = delay is None or attempt == settings.max_attempts
            outcome = "failed" if final else "retried"
            record = self._attempt(
                message, receiver, attempt, outcome, error.status, error.reason, started
            )
            await self._safe(self.sink.log_attempt, record.to_record())
            telemetry.count(receiver.name, receiver.type, outcome)
            if final:
                break
            assert delay is not None
            log.warning(
                "attempt %d of %s to %s failed (%s); retrying in %.1fs",
                attempt,
                message.key,
                receiver.name,
                error.reason,
                delay,
            )
            await self._sleep(delay)
        assert error is not None
        log.error(
            "giving up on %s to %s after %d attempt(s): %s",
            message.key,
            receiver.name,
            attempt,
            error.reason,
        )
        await self._safe(
            self.sink.dead_letter,
            self._dead_letter(
                message, receiver.name, receiver.type, attempt, error.status, error.reason
            ),
        )
        return DeliveryResult(
            message.key, receiver.name, receiver.type, "failed", attempt, error.status, error.reason
        ), None

    def _retry_delay(
        self, error: NotificationError, attempt: int, receiver: Receiver, time_left: float
    ) -> float | None:
        """How long to wait before the next attempt; None when there is none to make."""
        if not error.retryable or time_left <= 0:
            return None
        settings = self.settings
        delay = backoff_delay(attempt, settings.backoff_s, settings.backoff_max_s, self._rng)
        if error.retry_after is not None:
            honoured = min(error.retry_after, settings.retry_after_max_s)
            self.limiter.hold(receiver.rate_limit_key, honoured)
            if honoured > time_left:
                return None  # the receiver asked us to come back after we must give up
            delay = max(delay, honoured)
        # The last attempt is made at the end of the window rather than never.
        return min(delay, time_left)

    def _dead_letter(
        self,
        message: Message,
        receiver: str,
        receiver_type: str,
        attempts: int,
        status: int | None,
        reason: str,
    ) -> dict[str, Any]:
        """An `alerts.dlq` record: enough to resend by hand (the incident event included)."""
        return notification_dead_letter(
            key=message.key,
            incident_id=message.incident_id,
            brand=message.brand,
            receiver=receiver,
            receiver_type=receiver_type,
            kind=message.kind,
            attempts=attempts,
            status=status,
            reason=reason,
            failed_at=_iso(self._clock()),
            incident=message.event,
        )

    async def deliver_many(self, jobs: list[tuple[Message, str]]) -> list[DeliveryResult]:
        """Deliver all at once; one receiver's trouble never holds up another's message."""
        return list(await asyncio.gather(*(self.deliver(m, r) for m, r in jobs)))
