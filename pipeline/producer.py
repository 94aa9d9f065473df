"""The kafka-python producer every source uses to put posts on `posts.raw`.

Idempotent with acks=all (a broker retry never writes a post twice), compressed, keyed by
`platform:id` so one post always lands on the same partition. Delivery failures are
counted and reported; leaving the `with` block flushes, and `failed` tells the caller
whether to exit non-zero.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from pipeline import metrics
from pipeline.limits import MAX_MESSAGE_BYTES
from pipeline.records import post_key
from pipeline.settings import KafkaSettings, env_choice, env_int
from pipeline.topics import POSTS_RAW

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProducerSettings:
    compression: str = "lz4"
    linger_ms: int = 20
    batch_bytes: int = 262_144
    delivery_timeout_ms: int = 120_000

    @classmethod
    def from_env(cls) -> ProducerSettings:
        return cls(
            compression=env_choice(
                "VIGIE_PRODUCER_COMPRESSION", cls.compression, ("lz4", "gzip", "none")
            ),
            linger_ms=env_int("VIGIE_PRODUCER_LINGER_MS", cls.linger_ms, minimum=0),
            batch_bytes=env_int("VIGIE_PRODUCER_BATCH_BYTES", cls.batch_bytes, minimum=1024),
            delivery_timeout_ms=env_int(
                "VIGIE_PRODUCER_DELIVERY_TIMEOUT_MS", cls.delivery_timeout_ms, minimum=1000
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
        self.topic = kafka.topic(topic)
        self.source = source
        self.delivered = 0
        self.failed = 0
        self.errors: list[str] = []  # the first few delivery errors, for the summary
        self._lock = threading.Lock()
        self._produced = metrics.POSTS_PRODUCED.labels(source=source)
        self._produce_failed = metrics.POSTS_PRODUCE_FAILED.labels(source=source)
        self._producer = KafkaProducer(
            **kafka.kafka_python_config(),
            acks="all",
            enable_idempotence=True,
            compression_type=None if settings.compression == "none" else settings.compression,
            linger_ms=settings.linger_ms,
            batch_size=settings.batch_bytes,
            delivery_timeout_ms=settings.delivery_timeout_ms,
            max_request_size=MAX_MESSAGE_BYTES,  # pipeline/limits.py
            client_id=f"vigie-{source}",
        )

    def send(self, post: dict[str, Any]) -> Any:
        """Queue one post; the returned future resolves when Kafka acknowledged it."""
        return self.send_raw(post_key(post), orjson.dumps(post))

    def send_raw(self, key: str | bytes, value: bytes | None) -> Any:
        key_bytes = key.encode("utf-8") if isinstance(key, str) else key
        future = self._producer.send(self.topic, key=key_bytes, value=value)
        future.add_callback(self._on_delivered)
        future.add_errback(self._on_failed)
        return future

    def _on_delivered(self, _metadata: Any) -> None:
        with self._lock:
            self.delivered += 1
        self._produced.inc()

    def _on_failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(f"{type(exc).__name__}: {exc}")
        self._produce_failed.inc()
        log.error("delivery to %s failed: %s", self.topic, exc)

    def flush(self, timeout_s: float | None = None) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            log.error("flush failed: %s", exc)

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> PostProducer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
