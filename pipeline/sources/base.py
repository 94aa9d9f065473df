"""The source framework: what every connector shares.

A connector only knows its platform: it opens one connection (or runs one polling loop)
and yields `SourceItem`s. The `SourceRunner` around it does the rest, the same way for
every platform:

- reconnects with exponential backoff and jitter, or waits exactly as long as a
  rate-limit answer asked (`RateLimited`);
- drops a post whose key it sent recently, so a reconnect that replays never sends a
  post twice;
- applies the watchlist pre-filter (a plain `text -> bool` function);
- hands posts to a `PostSink` and saves the resume state (cursor and recent keys) only
  after the sink confirmed delivery, so a crash re-reads rather than loses;
- counts everything in the SOURCE_* metrics and writes every unusable platform item,
  with its reason, to `<state dir>/<name>.rejects.jsonl`;
- stops cleanly: `stop()` (wired to SIGTERM/SIGINT by `run_until_signal`) flushes the
  sink, saves the state and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pipeline.limits import DEFAULT_MAX_POST_BYTES
from pipeline.records import post_key
from pipeline.settings import (
    StateSettings,
    env_float,
    env_int,
    env_max_record_bytes,
    env_str,
)

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "Connector",
    "Delivery",
    "DeliveryError",
    "DeliveryPending",
    "FatalSourceError",
    "MALFORMED",
    "Post",
    "PostSink",
    "RateLimited",
    "RecentKeys",
    "RunReport",
    "RunnerSettings",
    "SourceItem",
    "SourceRunner",
    "StateStore",
    "TextFilter",
    "TransientSourceError",
    "deep_merge",
    "post_key",
    "retry_after_seconds",
    "run_until_signal",
    "state_dir",
]

Post = dict[str, Any]
TextFilter = Callable[[str], bool]

log = logging.getLogger("vigie.sources")


# --------------------------------------------------------------------------- errors


class TransientSourceError(Exception):
    """The connection failed or ended; try again after a backoff.

    `kind` picks the backoff policy: "network" (could not connect or the connection
    dropped), "http" (the server answered with an error status).
    """

    def __init__(self, message: str, kind: str = "network") -> None:
        super().__init__(message)
        self.kind = kind


class RateLimited(TransientSourceError):
    """The platform said "too many requests": wait `retry_after` seconds (None: unknown)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message, kind="rate_limit")
        self.retry_after = retry_after


#: What a platform item that does not have the documented shape raises while being read:
#: the item is rejected with the message, the source goes on.
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError)


class FatalSourceError(Exception):
    """Retrying cannot help (bad credentials, bad configuration): stop with this message."""


class DeliveryError(Exception):
    """The sink could not confirm that posts reached Kafka."""


class DeliveryPending(DeliveryError):
    """Nothing failed, but Kafka has not acknowledged (or taken) the posts yet: it may be
    away. The sink keeps retrying; the resume state must not move past them."""


# --------------------------------------------------------------------------- items


@dataclass(frozen=True)
class SourceItem:
    """One thing a connector read.

    Exactly one of `post` / `rejected` / `retry` is usually set; an item with only
    `state` is a checkpoint (e.g. an RSS feed's new ETag after its items).
    `state` is merged (deep) into the connector's resume state once everything read
    before it is delivered.
    """

    post: Post | None = None
    state: Mapping[str, Any] | None = None
    rejected: str | None = None
    raw: str | None = None
    retry: str | None = None

    @classmethod
    def ok(cls, post: Post, state: Mapping[str, Any] | None = None) -> SourceItem:
        return cls(post=post, state=state)

    @classmethod
    def bad(
        cls, reason: str, raw: Any = None, state: Mapping[str, Any] | None = None
    ) -> SourceItem:
        return cls(rejected=reason, raw=_snippet(raw), state=state)

    @classmethod
    def checkpoint(cls, state: Mapping[str, Any]) -> SourceItem:
        return cls(state=state)


def _snippet(raw: Any, limit: int = 2000) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        try:
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            raw = repr(raw)
    return raw if len(raw) <= limit else raw[:limit] + "…"


def deep_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `target` in place: dicts merge, everything else replaces."""
    for key, value in patch.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            deep_merge(current, value)
        elif isinstance(value, Mapping):
            target[key] = deep_merge({}, value)
        else:
            target[key] = value
    return target


# --------------------------------------------------------------------------- sinks


class Delivery(Protocol):
    def wait(self, timeout: float | None = None) -> None:
        """Block until the post is acknowledged; raise DeliveryError otherwise."""


class PostSink(Protocol):
    """Where posts go: Kafka in production (`KafkaSink`), a list in tests (`MemorySink`).

    `send` may block briefly (Kafka client buffers) and raises DeliveryPending when it
    cannot take a post now (Kafka away, memory bound reached); `flush` blocks until
    everything sent so far is acknowledged and raises DeliveryError if anything failed,
    DeliveryPending if something is still unacknowledged after `timeout`.
    """

    def send(self, post: Post) -> Delivery: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- backoff


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


# --------------------------------------------------------------------------- state


class RecentKeys:
    """The keys of the last `capacity` posts sent, oldest forgotten first."""

    def __init__(self, capacity: int, keys: Iterable[str] = ()) -> None:
        self.capacity = max(1, capacity)
        self._keys: OrderedDict[str, None] = OrderedDict()
        for key in keys:
            self.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def snapshot(self) -> list[str]:
        return list(self._keys)


def state_dir() -> Path:
    """`$VIGIE_STATE_DIR/sources`, or `<project root>/.state/sources`."""
    return StateSettings.from_env().sources_dir


class StateStore:
    """One JSON file per source: {"cursor": {...}, "recent_keys": [...]}; atomic writes.

    Saves run in worker threads and may overlap (a cancelled periodic save still running
    while the final one starts), so each writes its own temporary file and the rename
    happens under a lock: the file on disk is always one whole snapshot.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._write_lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"cursor": {}, "recent_keys": []}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # Refuse rather than silently start from scratch (which would re-read or skip).
            raise FatalSourceError(
                f"{self.path}: the resume state is not valid JSON ({exc.msg}, line {exc.lineno});"
                " fix or delete it to start from now"
            ) from None
        if not isinstance(data, dict):
            raise FatalSourceError(f"{self.path}: the resume state must be a JSON object")
        data.setdefault("cursor", {})
        data.setdefault("recent_keys", [])
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            descriptor, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp"
            )
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, ensure_ascii=False)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


# --------------------------------------------------------------------------- connector


class Connector(ABC):
    """A platform connection. Subclasses set `name` and `platform` and implement `stream`."""

    name: ClassVar[str] = "source"
    #: backoff policies by error kind; subclasses override where the platform documents them
    policies: ClassVar[Mapping[str, BackoffPolicy]] = DEFAULT_POLICIES
    #: polling connectors make one pass and return when set (the runner's `once`)
    single_pass: bool = False

    @abstractmethod
    def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        """Open one connection from `cursor` (the merged state so far) and yield items.

        Raise TransientSourceError / RateLimited to be called again after a pause,
        FatalSourceError to stop. Returning normally means the connection ended
        (streaming: reconnect; with `once`: the run is over).
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release what the connector holds between connections (sessions, tokens)."""


# --------------------------------------------------------------------------- runner


@dataclass(frozen=True)
class RunnerSettings:
    """How every source runs; `VIGIE_SOURCE_*`."""

    state_dir: Path = field(default_factory=state_dir)
    recent_keys: int = 20_000
    checkpoint_seconds: float = 2.0
    checkpoint_items: int = 500
    backoff_scale: float = 1.0
    max_wait_seconds: float = 900.0
    healthy_seconds: float = 1.0
    flush_timeout: float = 60.0
    max_record_bytes: int = DEFAULT_MAX_POST_BYTES  # the validate stage's limit

    @classmethod
    def from_env(cls) -> RunnerSettings:
        return cls(
            max_record_bytes=env_max_record_bytes(),
            state_dir=Path(env_str("VIGIE_SOURCE_STATE_DIR", str(state_dir()))),
            recent_keys=env_int("VIGIE_SOURCE_RECENT_KEYS", cls.recent_keys, minimum=1),
            checkpoint_seconds=env_float(
                "VIGIE_SOURCE_CHECKPOINT_SECONDS", cls.checkpoint_seconds, minimum=0.0
            ),
            checkpoint_items=env_int(
                "VIGIE_SOURCE_CHECKPOINT_ITEMS", cls.checkpoint_items, minimum=1
            ),
            backoff_scale=env_float("VIGIE_SOURCE_BACKOFF_SCALE", cls.backoff_scale, 0.0),
            max_wait_seconds=env_float(
                "VIGIE_SOURCE_MAX_WAIT_SECONDS", cls.max_wait_seconds, minimum=0.0
            ),
        )


@dataclass
class RunReport:
    """What a run did; printed as JSON by `vigie ingest <source>` when it ends."""

    source: str
    produced: int = 0
    invalid: int = 0
    duplicate: int = 0
    filtered: int = 0
    reconnects: int = 0
    rejects: list[dict[str, str]] = field(default_factory=list)
    stopped_by: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "produced": self.produced,
            "invalid": self.invalid,
            "duplicate": self.duplicate,
            "filtered": self.filtered,
            "reconnects": self.reconnects,
            "rejects": self.rejects[-20:],
            "stopped_by": self.stopped_by,
        }


_END = object()


class SourceRunner:
    """Runs one connector into one sink until stopped (or, with `once`, until it ends)."""

    def __init__(
        self,
        connector: Connector,
        sink: PostSink,
        settings: RunnerSettings | None = None,
        *,
        text_filter: TextFilter | None = None,
        state_name: str | None = None,
        once: bool = False,
        rng: random.Random | None = None,
    ) -> None:
        self.connector = connector
        self.sink = sink
        self.settings = settings or RunnerSettings()
        self.text_filter = text_filter
        self.name = state_name or connector.name
        self.once = once
        connector.single_pass = once
        self.store = StateStore(self.settings.state_dir / f"{self.name}.json")
        self.rejects_path = self.settings.state_dir / f"{self.name}.rejects.jsonl"
        self.report = RunReport(source=connector.name)
        self._backoff = Backoff(connector.policies, self.settings.backoff_scale, rng)
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        self._pending_since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._newest_created: float | None = None
        loaded = self.store.load()
        self.cursor: dict[str, Any] = dict(loaded["cursor"])
        self.recent = RecentKeys(self.settings.recent_keys, loaded["recent_keys"])

    # -- control

    def stop(self, reason: str = "stop") -> None:
        if not self._stop.is_set():
            self.report.stopped_by = reason
            self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- main loop

    async def run(self) -> RunReport:
        """Read, deliver and checkpoint until `stop()` (or the end, with `once`)."""
        reader = asyncio.create_task(self._read_forever(), name=f"{self.name}-reader")
        ticker = asyncio.create_task(self._tick(), name=f"{self.name}-checkpoints")
        try:
            while True:
                item = await self._next_item()
                if item is None:  # stopped
                    break
                if item is _END:
                    self.report.stopped_by = "end"
                    break
                if isinstance(item, BaseException):
                    raise item
                await self._handle(item)
                self._queue.task_done()
                if self._checkpoint_due():
                    await self.checkpoint()
        finally:
            reader.cancel()
            ticker.cancel()
            for task in (reader, ticker):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            with contextlib.suppress(Exception):
                await self.connector.aclose()
        # Only a clean end saves: after a delivery failure the old cursor must stay.
        await self.checkpoint(force=True)
        return self.report

    async def _next_item(self) -> Any:
        if self._stop.is_set():
            return None
        getter = asyncio.ensure_future(self._queue.get())
        stopper = asyncio.ensure_future(self._stop.wait())
        done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            stopper.cancel()
            return getter.result()
        getter.cancel()
        return None

    async def _read_forever(self) -> None:
        """The reconnect loop; feeds the queue, never touches the sink or the state."""
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                got_any = False
                try:
                    async for item in self.connector.stream(self._cursor_view()):
                        got_any = True
                        await self._queue.put(item)
                    if self.once:
                        await self._queue.put(_END)
                        return
                    error: TransientSourceError = TransientSourceError(
                        "the server closed the connection"
                    )
                except FatalSourceError as exc:
                    await self._queue.put(exc)
                    return
                except TransientSourceError as exc:
                    error = exc
                except (TimeoutError, OSError) as exc:
                    error = TransientSourceError(f"{type(exc).__name__}: {exc}")
                except Exception as exc:  # aiohttp errors and anything else the network throws
                    if _is_client_error(exc):
                        error = TransientSourceError(f"{type(exc).__name__}: {exc}")
                    else:
                        await self._queue.put(exc)
                        return
                healthy = got_any and time.monotonic() - started >= self.settings.healthy_seconds
                if healthy:
                    self._backoff.reset()
                delay = self._delay_for(error, healthy)
                await self._queue.put(SourceItem(retry=f"{error} (retrying in {delay:.1f} s)"))
                # Resume from everything read so far: wait until the handler took it all in.
                await self._queue.join()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
        except asyncio.CancelledError:
            raise

    def _delay_for(self, error: TransientSourceError, healthy: bool) -> float:
        if isinstance(error, RateLimited) and error.retry_after is not None:
            self._backoff.attempts += 1
            # The reset time is authoritative; a little jitter spreads restarts.
            wait = error.retry_after * self.settings.backoff_scale
            return min(
                wait + random.uniform(0, min(1.0, wait * 0.1 + 0.01)),
                self.settings.max_wait_seconds,
            )
        if healthy and error.kind == "network":
            # An established connection that dropped: reconnect at once (X, Jetstream docs).
            return 0.0
        return min(self._backoff.next_delay(error.kind), self.settings.max_wait_seconds)

    def _cursor_view(self) -> dict[str, Any]:
        # A copy: the connector reads it when (re)connecting, the runner keeps advancing it.
        return json.loads(json.dumps(self.cursor))

    async def _tick(self) -> None:
        interval = max(self.settings.checkpoint_seconds, 0.05)
        while True:
            await asyncio.sleep(interval)
            if self._pending_since_checkpoint:
                await self.checkpoint()

    # -- per item

    async def _handle(self, item: SourceItem) -> None:
        source = self.connector.name
        if item.retry is not None:
            self.report.reconnects += 1
            _metric_inc("SOURCE_RECONNECTS", source)
            log.warning("%s: %s", self.name, item.retry)
        elif item.rejected is not None:
            self.report.invalid += 1
            _metric_inc("SOURCE_ITEMS", source, "invalid")
            self._reject(item.rejected, item.raw)
        elif item.post is not None and not await self._deliver(item.post):
            return  # stopped while Kafka could not take it: its state must not count
        if item.state:
            deep_merge(self.cursor, item.state)
            self._pending_since_checkpoint += 1

    async def _deliver(self, post: Post) -> bool:
        """Hand one post to the sink (or count why not); False only when the runner was
        stopped while waiting for Kafka to take it."""
        source = self.connector.name
        key = post_key(post)
        if key in self.recent:
            self.report.duplicate += 1
            _metric_inc("SOURCE_ITEMS", source, "duplicate")
            return True
        text = str(post.get("text") or "")
        if not text.strip() or (self.text_filter is not None and not self.text_filter(text)):
            # Nothing to read (image-only posts) or no brand of the watchlist in it.
            self.report.filtered += 1
            _metric_inc("SOURCE_ITEMS", source, "filtered")
            return True
        problems = _schema_problems(post)
        if problems:
            self.report.invalid += 1
            _metric_inc("SOURCE_ITEMS", source, "invalid")
            self._reject(f"{key}: {problems}", _snippet(post))
            return True
        size = len(json.dumps(post, ensure_ascii=False).encode())
        if size > self.settings.max_record_bytes:
            self.report.invalid += 1
            _metric_inc("SOURCE_ITEMS", source, "invalid")
            self._reject(
                f"{key}: record of {size} bytes, over VIGIE_MAX_RECORD_BYTES"
                f" ({self.settings.max_record_bytes})",
                _snippet(post),
            )
            return True
        while True:
            try:
                await asyncio.to_thread(self.sink.send, post)
                break
            except DeliveryPending:
                # Kafka is away and the producer's memory bound is reached: wait for it
                # (the producer logs the outage once), unless asked to stop.
                if self._stop.is_set():
                    return False
            except DeliveryError as exc:
                raise FatalSourceError(
                    f"{self.name}: Kafka refused a post ({exc}); the resume state was not"
                    " advanced"
                ) from None
        self.recent.add(key)
        self._pending_since_checkpoint += 1
        self.report.produced += 1
        _metric_inc("SOURCE_ITEMS", source, "produced")
        created = _timestamp(post.get("created_at"))
        if created is not None and (self._newest_created is None or created > self._newest_created):
            self._newest_created = created
        if self._newest_created is not None:
            _metric_set("SOURCE_LAG_SECONDS", source, max(0.0, time.time() - self._newest_created))
        return True

    def _reject(self, reason: str, raw: str | None) -> None:
        entry = {
            "source": self.connector.name,
            "reason": reason,
            "at": datetime.now(UTC).isoformat(),
            "raw": raw or "",
        }
        self.report.rejects.append({"reason": reason})
        del self.report.rejects[:-100]
        log.warning("%s: rejected an item: %s", self.name, reason)
        try:
            self.rejects_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.rejects_path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        except OSError as exc:
            log.error("%s: cannot write %s: %s", self.name, self.rejects_path, exc.strerror)

    # -- checkpoints

    def _flush_wait(self, final: bool) -> float:
        # A periodic checkpoint does not hold the reader up for long while Kafka is away;
        # the final one gives it the whole flush_timeout.
        return self.settings.flush_timeout if final else min(self.settings.flush_timeout, 5.0)

    def _checkpoint_due(self) -> bool:
        return self._pending_since_checkpoint >= self.settings.checkpoint_items or (
            self._pending_since_checkpoint > 0
            and time.monotonic() - self._last_checkpoint >= self.settings.checkpoint_seconds
        )

    async def checkpoint(self, force: bool = False) -> None:
        """Wait for the sink to confirm everything sent, then save cursor and recent keys."""
        async with self._lock:
            if not self._pending_since_checkpoint and not force:
                return
            while True:
                try:
                    await asyncio.to_thread(self.sink.flush, self._flush_wait(force))
                    break
                except DeliveryPending as exc:
                    # Kafka is away: the posts stay in the producer, which retries them.
                    # The saved state stays at the last acknowledged post; a periodic
                    # checkpoint tries again later, the final one waits unless stopped.
                    if not force:
                        return
                    if self._stop.is_set():
                        raise FatalSourceError(
                            f"{self.name}: stopped while Kafka was away ({exc}); the resume"
                            " state stays at the last acknowledged post, so a restart"
                            " fetches the rest again"
                        ) from None
                except DeliveryError as exc:
                    raise FatalSourceError(
                        f"{self.name}: Kafka did not acknowledge posts ({exc}); the resume"
                        " state was not advanced, so a restart re-reads them"
                    ) from None
            snapshot = {"cursor": self._cursor_view(), "recent_keys": self.recent.snapshot()}
            # A cancelled await would not stop the thread: let the write finish before the
            # lock is released, so the next checkpoint (the final one) saves after it.
            saving = asyncio.ensure_future(asyncio.to_thread(self.store.save, snapshot))
            try:
                await asyncio.shield(saving)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await saving
                raise
            self._pending_since_checkpoint = 0
            self._last_checkpoint = time.monotonic()


def _schema_problems(post: Post) -> str:
    """The schema's verdict on a post, "" when valid; the post itself is sent unchanged so
    that the validate stage still normalises it and detects its language."""
    try:
        from pipeline.schema import validate_post
    except ImportError:  # pragma: no cover - the schema ships with Vigie
        return ""
    _, errors = validate_post(post)
    return "; ".join(f"{e.field}: {e.message}" for e in errors)


def _is_client_error(exc: BaseException) -> bool:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        return False
    return isinstance(exc, aiohttp.ClientError | aiohttp.ServerDisconnectedError)


def _timestamp(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _metric_inc(name: str, *labels: str) -> None:
    metric = _metric(name)
    if metric is not None:
        metric.labels(*labels).inc()


def _metric_set(name: str, label: str, value: float) -> None:
    metric = _metric(name)
    if metric is not None:
        metric.labels(label).set(value)


def _metric(name: str) -> Any:
    # Metrics are optional plumbing: a source must keep running if they cannot load.
    try:
        from pipeline import metrics
    except Exception:  # noqa: BLE001 - any import failure means "no metrics"
        return None
    return getattr(metrics, name, None)


async def run_until_signal(runner: SourceRunner) -> RunReport:
    """Run with SIGTERM/SIGINT wired to `runner.stop()`: the run flushes and returns."""
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, runner.stop, signal.Signals(sig).name)
            installed.append(sig)
    try:
        return await runner.run()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
