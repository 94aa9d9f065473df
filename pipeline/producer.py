"""The kafka-python producer every source uses to put posts on `posts.raw`.

Idempotent with acks=all (a broker retry never writes a post twice), compressed, keyed by
`platform:id` so one post always lands on the same partition.

A broker outage of any length loses nothing. By default a post is retried until Kafka
acknowledges it (`VIGIE_PRODUCER_DELIVERY_TIMEOUT_MS=0`): the idempotent producer resends
the same batches with the same sequence numbers, so the broker writes each post once
however long it was away. Memory stays bounded: once `VIGIE_PRODUCER_BUFFER_BYTES` of
posts wait for an acknowledgement, `send` blocks until Kafka takes them (kafka-python 3
has no `buffer_memory` bound of its own). The outage is logged once when it starts and
once when it ends (`pipeline.kafka_link`), not once per reconnect.

`wait_delivered` / leaving the `with` block waits for every acknowledgement; `abandon()`
(a second Ctrl-C) gives up waiting, and `failed`/`pending` tell the caller what was not
delivered.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from pipeline import metrics
from pipeline.kafka_link import KafkaLink, kafka_link
from pipeline.limits import MAX_MESSAGE_BYTES
from pipeline.records import post_key
from pipeline.settings import KafkaSettings, env_choice, env_int
from pipeline.topics import POSTS_RAW

log = logging.getLogger(__name__)

#: Posts waiting this long without any acknowledgement mean Kafka is away.
STALL_S = 10.0

#: kafka-python's delivery timeout when Vigie's is 0 ("no limit"): Java's largest, 24.8 days.
_NO_LIMIT_MS = 2**31 - 1


class ProducerAbandoned(KafkaError):
    """`abandon()` was called while a send waited for room or for Kafka."""


class BufferFull(KafkaError):
    """No room in the producer's memory bound within the time the caller allowed."""


@dataclass(frozen=True)
class ProducerSettings:
    compression: str = "lz4"
    linger_ms: int = 20
    batch_bytes: int = 262_144
    delivery_timeout_ms: int = 0  # 0: retry until Kafka acknowledges, however long
    buffer_bytes: int = 67_108_864  # posts waiting for an acknowledgement, at most

    @classmethod
    def from_env(cls) -> ProducerSettings:
        delivery = env_int("VIGIE_PRODUCER_DELIVERY_TIMEOUT_MS", cls.delivery_timeout_ms, 0)
        if 0 < delivery < 1000:
            from pipeline.settings import SettingError

            raise SettingError(
                f"VIGIE_PRODUCER_DELIVERY_TIMEOUT_MS: 0 (no limit) or at least 1000, "
                f"got {delivery}"
            )
        return cls(
            compression=env_choice(
                "VIGIE_PRODUCER_COMPRESSION", cls.compression, ("lz4", "gzip", "none")
            ),
            linger_ms=env_int("VIGIE_PRODUCER_LINGER_MS", cls.linger_ms, minimum=0),
            batch_bytes=env_int("VIGIE_PRODUCER_BATCH_BYTES", cls.batch_bytes, minimum=1024),
            delivery_timeout_ms=delivery,
            buffer_bytes=env_int(
                "VIGIE_PRODUCER_BUFFER_BYTES", cls.buffer_bytes, minimum=1_048_576
            ),
        )


class PostProducer:
    """Sends posts (dicts in the post schema) to `posts.raw`, or raw bytes to any topic."""

    def __init__(
        self,
        kafka: KafkaSettings,
        source: str = "unknown",
        topic: str = POSTS_RAW,
        settings: ProducerSettings | None = None,
    ) -> None:
        settings = settings or ProducerSettings.from_env()
        self.settings = settings
        self.topic = kafka.topic(topic)
        self.source = source
        self.delivered = 0
        self.failed = 0
        self.errors: list[str] = []  # the first few delivery errors, for the summary
        self.link: KafkaLink = kafka_link(source, kafka.bootstrap_servers)
        self._room = threading.Condition()
        self._pending = 0  # posts handed to kafka-python, not yet acknowledged or failed
        self._pending_bytes = 0
        self._abandoned = threading.Event()
        self._last_progress = time.monotonic()  # last acknowledgement, or first send after
        self._pause_announced = False  # until the waiting posts fall under half the bound
        self._produced = metrics.POSTS_PRODUCED.labels(source=source)
        self._produce_failed = metrics.POSTS_PRODUCE_FAILED.labels(source=source)
        self._unacknowledged = metrics.POSTS_UNACKNOWLEDGED.labels(source=source)
        self._producer = KafkaProducer(
            **kafka.kafka_python_config(),
            acks="all",
            enable_idempotence=True,
            compression_type=None if settings.compression == "none" else settings.compression,
            linger_ms=settings.linger_ms,
            batch_size=settings.batch_bytes,
            delivery_timeout_ms=settings.delivery_timeout_ms or _NO_LIMIT_MS,
            # send() waits this long for a topic's metadata; our loop waits again (and
            # can be abandoned) rather than failing the post.
            max_block_ms=10_000,
            # After an outage, reconnect within 2 s of the broker's return (kafka-python's
            # default backoff grows to 30 s, and the posts would wait that much longer).
            reconnect_backoff_max_ms=2_000,
            max_request_size=MAX_MESSAGE_BYTES,  # pipeline/limits.py
            client_id=f"vigie-{source}",
        )

    @property
    def pending(self) -> int:
        """Posts sent and neither acknowledged nor failed yet."""
        return self._pending

    def send(self, post: dict[str, Any], block_s: float | None = None) -> Any:
        """Queue one post; the returned future resolves when Kafka acknowledged it."""
        return self.send_raw(post_key(post), orjson.dumps(post), block_s=block_s)

    def send_raw(
        self, key: str | bytes, value: bytes | None, block_s: float | None = None
    ) -> Any:
        """Queue one record. Blocks while the memory bound is reached (at most `block_s`
        seconds, then BufferFull; None: until there is room or `abandon()`)."""
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        size = len(key_bytes) + len(value or b"")
        self._reserve(size, block_s)
        try:
            future = self._send_waiting_for_metadata(key_bytes, value)
        except BaseException:
            self._release(size)
            raise
        future.add_callback(self._on_delivered, size)
        future.add_errback(self._on_failed, size)
        return future

    def _reserve(self, size: int, block_s: float | None) -> None:
        deadline = None if block_s is None else time.monotonic() + block_s
        with self._room:
            # A record larger than the whole bound still goes alone.
            while self._pending and self._pending_bytes + size > self.settings.buffer_bytes:
                if self._abandoned.is_set():
                    raise ProducerAbandoned("the producer was abandoned")
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise BufferFull(
                        f"{self._pending} posts ({self._pending_bytes} bytes) wait for Kafka"
                    )
                if not self._pause_announced and block_s is None:
                    self._pause_announced = True
                    log.warning(
                        "%s: sending paused: %d posts (%.1f MiB, the bound of "
                        "VIGIE_PRODUCER_BUFFER_BYTES) wait for Kafka's acknowledgement; "
                        "it resumes by itself when Kafka takes them",
                        self.source, self._pending, self._pending_bytes / 1_048_576,
                    )
                self._room.wait(1.0 if left is None else min(left, 1.0))
                self._notice_stall()
            if not self._pending:
                self._last_progress = time.monotonic()
            self._pending += 1
            self._pending_bytes += size
            self._notice_stall()
        self._unacknowledged.inc()

    def _notice_stall(self) -> None:
        """Kafka away without the client's logs saying so (logging not configured, or a
        quiet failure): posts waiting STALL_S without any acknowledgement is an outage."""
        if (
            self._pending
            and not self.link.down
            and time.monotonic() - self._last_progress >= STALL_S
        ):
            self.link.lost(
                f"no acknowledgement for {STALL_S:.0f} s",
                f"{self._pending} posts wait in memory (at most "
                f"{self.settings.buffer_bytes / 1_048_576:.0f} MiB, then sending pauses)",
            )

    def _release(self, size: int) -> None:
        with self._room:
            self._pending -= 1
            self._pending_bytes -= size
            if self._pending_bytes < self.settings.buffer_bytes // 2:
                self._pause_announced = False
            self._room.notify_all()
        self._unacknowledged.dec()

    def _send_waiting_for_metadata(self, key: bytes | None, value: bytes | None) -> Any:
        while True:
            try:
                return self._producer.send(self.topic, key=key, value=value)
            except KafkaTimeoutError as exc:
                # No metadata for the topic yet (Kafka away before the first send).
                if self._abandoned.is_set():
                    raise ProducerAbandoned("the producer was abandoned") from None
                self.link.lost(str(exc), f"no partition metadata for {self.topic} yet")

    def _on_delivered(self, size: int, _metadata: Any) -> None:
        self._release(size)
        with self._room:
            self.delivered += 1
            self._last_progress = time.monotonic()
        self._produced.inc()
        if self.link.down:
            self.link.back(f"{self.source} delivers again ({self._pending} posts still waiting)")

    def _on_failed(self, size: int, exc: BaseException) -> None:
        self._release(size)
        with self._room:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        self._produce_failed.inc()
        log.error("delivery to %s failed: %s", self.topic, exc)

    def wait_delivered(self, timeout_s: float | None = None) -> bool:
        """Wait until every post sent so far is acknowledged or failed; True when none is
        left. Without a timeout it waits as long as Kafka is away, until `abandon()`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        announced = False
        try:
            # Makes lingering batches sendable now; the acknowledgements are counted below.
            self._producer.flush(timeout=0)
        except KafkaError:
            pass
        with self._room:
            while self._pending:
                if self._abandoned.is_set():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                if not announced and self.link.down and timeout_s is None:
                    announced = True
                    log.warning(
                        "%s: %d posts wait for Kafka before this process can stop "
                        "(Ctrl-C again to give up on them)", self.source, self._pending,
                    )
                self._room.wait(1.0 if left is None else min(left, 1.0))
                self._notice_stall()
        return True

    def flush(self, timeout_s: float | None = None) -> bool:
        return self.wait_delivered(timeout_s)

    def abandon(self) -> None:
        """Stop waiting for Kafka: blocked sends raise ProducerAbandoned, waits return."""
        self._abandoned.set()
        with self._room:
            self._room.notify_all()

    def close(self, timeout_s: float | None = None) -> None:
        """Wait for the acknowledgements (see `wait_delivered`), then close the client.
        Posts still unacknowledged (abandoned) are failed by the client and counted."""
        if self.wait_delivered(timeout_s):
            try:
                self._producer.close(timeout=30)
            except KafkaError as exc:
                log.error("%s: closing the producer: %s", self.source, exc)
            return
        # kafka-python's close() flushes first and raises on a timeout before it reaches
        # its own forced close, and its exit hook would raise again: force the close, so
        # the posts still waiting fail (counted in `failed`) and the process exits quietly.
        sender = getattr(self._producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(5)
        try:
            self._producer.close(timeout=1)
        except KafkaError:
            pass

    def __enter__(self) -> PostProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
