"""Where a source's posts go: the `PostSink` protocol the runner writes to, and its
implementations `KafkaSink` (posts.raw), `MemorySink` (tests) and `PrintSink` (dry runs)."""

from __future__ import annotations

import threading
import time
from typing import Any, Protocol

from pipeline.records import post_key
from pipeline.sources.errors import DeliveryError, DeliveryPending
from pipeline.sources.items import Post

__all__ = ["Delivery", "DoneDelivery", "KafkaSink", "MemorySink", "PostSink", "PrintSink"]


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


class DoneDelivery:
    """A delivery that is already acknowledged."""

    def wait(self, timeout: float | None = None) -> None:
        return None


class MemorySink:
    """Keeps posts in a list: the connector's own interface, used by tests and `--dry-run`.

    `fail_next_flush` makes the next flush raise, to test that the resume state does not
    advance when delivery is not confirmed.
    """

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.flushes = 0
        self.fail_next_flush = False
        self._changed = threading.Condition()

    def send(self, post: Post) -> DoneDelivery:
        with self._changed:
            self.posts.append(post)
            self._changed.notify_all()
        return DoneDelivery()

    def flush(self, timeout: float | None = None) -> None:
        if self.fail_next_flush:
            self.fail_next_flush = False
            raise DeliveryError("the test sink refused this flush")
        self.flushes += 1

    def close(self) -> None:
        return None

    @property
    def keys(self) -> list[str]:
        return [post_key(post) for post in self.posts]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Block (in a thread) until at least `count` posts arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True


class _FutureDelivery:
    def __init__(self, future: Any) -> None:
        self._future = future

    def wait(self, timeout: float | None = None) -> None:
        try:
            self._future.get(timeout=timeout)
        except Exception as exc:  # kafka-python raises KafkaError subclasses
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


class KafkaSink:
    """Posts to `posts.raw` through `PostProducer` (acks=all, idempotent, waits out outages).

    `flush` waits for every send since the previous flush: DeliveryError if one failed,
    DeliveryPending if some are not acknowledged yet (Kafka away: they stay in the
    producer and are retried), so the runner never advances its cursor past a post that
    is not on Kafka. `send` raises DeliveryPending when the producer's memory bound stays
    full for a second, so that a caller can stop instead of blocking for the outage.
    """

    def __init__(self, settings: Any = None, source: str = "source") -> None:
        from pipeline.producer import PostProducer
        from pipeline.settings import KafkaSettings

        self._producer = PostProducer(settings or KafkaSettings.from_env(), source=source)
        self._lock = threading.Lock()
        self._pending: list[Any] = []
        self._closed = False

    def send(self, post: Post) -> _FutureDelivery:
        from kafka.errors import KafkaError

        from pipeline.producer import BufferFull

        try:
            future = self._producer.send(post, block_s=1.0)
        except BufferFull as exc:
            raise DeliveryPending(f"Kafka has not taken earlier posts yet ({exc})") from None
        except KafkaError as exc:  # refused before sending: size, abandoned
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        with self._lock:
            self._pending.append(future)
            if len(self._pending) > 10_000:
                # The push endpoint waits on each future itself and never flushes: forget
                # the ones already acknowledged so the list stays small.
                self._pending = [f for f in self._pending if not (f.is_done and f.succeeded())]
        return _FutureDelivery(future)

    def flush(self, timeout: float | None = None) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        self._producer.flush(timeout)
        unconfirmed = [f for f in pending if not f.is_done]
        failed = [f for f in pending if f.is_done and f.failed()]
        if unconfirmed:
            with self._lock:  # keep them for the next flush's verdict
                self._pending = unconfirmed + self._pending
        if failed:
            first = failed[0].exception
            raise DeliveryError(
                f"{len(failed)} post(s) failed, {len(unconfirmed)} not acknowledged yet"
                f" ({type(first).__name__}: {first})"
            )
        if unconfirmed:
            raise DeliveryPending(f"{len(unconfirmed)} post(s) not acknowledged by Kafka yet")

    def close(self, timeout: float = 10.0) -> None:
        """Close after at most `timeout` s more of waiting: the runner has already waited
        (and kept its cursor before anything still unacknowledged)."""
        if self._closed:
            return
        self._closed = True
        if not self._producer.wait_delivered(timeout):
            self._producer.abandon()
        self._producer.close()


class PrintSink:
    """Writes each post as one JSON line on stdout: `vigie ingest <source> --dry-run`."""

    def __init__(self, stream: Any = None) -> None:
        import sys

        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self.count = 0

    def send(self, post: Post) -> DoneDelivery:
        import json

        line = json.dumps(post, ensure_ascii=False)
        with self._lock:
            self._stream.write(line + "\n")
            self.count += 1
        return DoneDelivery()

    def flush(self, timeout: float | None = None) -> None:
        with self._lock:
            self._stream.flush()

    def close(self) -> None:
        self.flush()
