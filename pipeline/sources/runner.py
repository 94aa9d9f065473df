"""`SourceRunner`: runs a connector, deduplicates, filters, delivers, checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import metrics
from pipeline.limits import DEFAULT_MAX_POST_BYTES
from pipeline.records import post_key
from pipeline.schema import validate_post
from pipeline.settings import (
    env_float,
    env_int,
    env_max_record_bytes,
    env_str,
)
from pipeline.sources.backoff import Backoff
from pipeline.sources.connector import Connector
from pipeline.sources.errors import (
    DeliveryError,
    DeliveryPending,
    FatalSourceError,
    RateLimited,
    TransientSourceError,
)
from pipeline.sources.items import Post, SourceItem, TextFilter, deep_merge, raw_snippet
from pipeline.sources.sinks import PostSink
from pipeline.sources.state import RecentKeys, StateStore, state_dir

__all__ = ["RunReport", "RunnerSettings", "SourceRunner", "run_until_signal"]


log = logging.getLogger("vigie.sources")


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
            self._reject(f"{key}: {problems}", raw_snippet(post))
            return True
        size = len(json.dumps(post, ensure_ascii=False).encode())
        if size > self.settings.max_record_bytes:
            self.report.invalid += 1
            _metric_inc("SOURCE_ITEMS", source, "invalid")
            self._reject(
                f"{key}: record of {size} bytes, over VIGIE_MAX_RECORD_BYTES"
                f" ({self.settings.max_record_bytes})",
                raw_snippet(post),
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
