"""The Kafka side of alerting: compacted topics read whole into memory, and the writer.

Topics (declared, with their settings, in pipeline/topics.py, which also creates them):
- `alerts.state`    compacted, key incident id: the policy's IncidentState per open incident
- `alerts.ledger`   compacted, key notification key: who is sending it (a claim), then
                    what became of it
- `alerts.silences` compacted, key silence id: every silence, kept so every worker sees it
- `alerts.log`      key incident id: one record per notification attempt
- `alerts.dlq`      key incident id: notifications that finally failed

Every worker reads the three compacted topics from the beginning and keeps tailing them
(`CompactedView`); before acting it calls `sync()`, which waits until it has read at
least up to the end offsets of that moment, so it sees what any other worker wrote
before (read-your-writes across workers, e.g. after a rebalance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key, too_large_errors
from pipeline.kafka_clients import aiokafka_config
from pipeline.limits import MAX_MESSAGE_BYTES, fits
from pipeline.settings import KafkaSettings
from pipeline.topics import ALERTS_DLQ

__all__ = [
    "AlertWriter",
    "CompactedView",
    "aiokafka_config",
]

log = logging.getLogger("vigie.alert")


class CompactedView:
    """A topic's latest value per key, in memory, kept up to date in the background."""

    def __init__(
        self,
        settings: KafkaSettings,
        name: str,
        on_change: Callable[[str, dict[str, Any] | None], None] | None = None,
    ) -> None:
        self.topic = settings.topic(name)
        self.values: dict[str, dict[str, Any]] = {}
        self._settings = settings
        self._on_change = on_change
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []
        self.bad_records = 0

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **aiokafka_config(self._settings),
            group_id=None,
            enable_auto_commit=False,
            # A fetch long-poll holds the connection: keep it short so that sync()'s
            # offset request is answered quickly.
            fetch_max_wait_ms=50,
        )
        await self._consumer.start()
        partitions = None
        for _ in range(50):  # metadata of a just-created topic can take a moment
            partitions = self._consumer.partitions_for_topic(self.topic)
            if partitions:
                break
            await self._consumer._client.force_metadata_update()  # noqa: SLF001
            await asyncio.sleep(0.1)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist")
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._run(), name=f"view:{self.topic}")
        await self.sync()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    self._apply(record.key, record.value)

    def _apply(self, raw_key: bytes | None, raw_value: bytes | None) -> None:
        if raw_key is None:
            self.bad_records += 1
            return
        key = raw_key.decode("utf-8", errors="replace")
        if raw_value is None:  # tombstone
            self.values.pop(key, None)
            value = None
        else:
            try:
                value = orjson.loads(raw_value)
            except orjson.JSONDecodeError:
                self.bad_records += 1
                log.error("%s: record %r is not JSON; ignored", self.topic, key)
                return
            self.values[key] = value
        if self._on_change is not None:
            self._on_change(key, value)

    def put_local(self, key: str, value: dict[str, Any] | None) -> None:
        """Apply our own write at once (it will also come back from the topic)."""
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value
        if self._on_change is not None:
            self._on_change(key, value)

    async def sync(self, timeout_s: float = 10.0) -> None:
        """Wait until everything written to the topic before this call has been read."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._partitions)
        deadline = asyncio.get_running_loop().time() + timeout_s
        for tp, end in ends.items():
            while await self._consumer.position(tp) < end:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"{self.topic} not caught up within {timeout_s}s")
                await asyncio.sleep(0.02)


class AlertWriter:
    """Writes alert records (acks=all, idempotent producer); JSON values, str keys.

    A record too large for Kafka (an incident event carrying huge posts, say) becomes a
    bounded dead letter on `alerts.dlq` (reason `too_large`) instead of an error that
    would stop the alert agent: pipeline/limits.py.
    """

    def __init__(self, settings: KafkaSettings) -> None:
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        # Created here: aiokafka binds to the running loop, which a Faust app's
        # register() step does not have yet.
        self._producer = AIOKafkaProducer(
            **aiokafka_config(self._settings), acks="all", enable_idempotence=True, linger_ms=5,
            max_request_size=MAX_MESSAGE_BYTES,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def write(self, name: str, key: str, value: dict[str, Any] | None) -> None:
        """Send and wait for the broker's acknowledgement (None writes a tombstone)."""
        if self._producer is None:
            raise RuntimeError("AlertWriter.start() was not called")
        await self.write_raw(name, key.encode(), None if value is None else orjson.dumps(value))

    async def write_raw(self, name: str, key: bytes, payload: bytes | None) -> None:
        """Send bytes as they are; one that Kafka cannot take is dead-lettered."""
        if self._producer is None:
            raise RuntimeError("AlertWriter.start() was not called")
        topic = self._settings.topic(name)
        if fits(key, payload):
            try:
                await self._producer.send_and_wait(topic, key=key, value=payload)
                return
            except (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError):
                pass  # a topic created elsewhere with a smaller limit
        size = len(key) + len(payload or b"")
        metrics.RECORDS_TOO_LARGE.labels(stage="alert", topic=topic).inc()
        log.error("a record of %d bytes cannot be written to %s; dead-lettered", size, topic)
        letter = dead_letter("alert", too_large_errors(size, topic), key=key, original=payload,
                             topic=topic, partition=-1, offset=-1, reason="too_large",
                             dlq=ALERTS_DLQ)
        try:
            await self._producer.send_and_wait(
                self._settings.topic(ALERTS_DLQ), key=dead_letter_key(key), value=letter
            )
        except (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError):
            log.error("%s refused a dead letter of %d bytes", self._settings.topic(ALERTS_DLQ),
                      len(letter))
