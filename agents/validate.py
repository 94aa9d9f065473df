"""The validate stage: posts.raw -> posts.valid (posts that mention a watched brand only),
anything unusable -> posts.dlq.

Every post of the firehose passes here, and nine in ten mention no watched brand, so this
stage is a plain aiokafka loop rather than a Faust agent (bench/RESULTS.md: Faust's
conductor, stream and producer buffer cost about 500 µs a record, the stage's own work
about 25 µs). It runs in the worker's event loop as a service started and stopped with
the Faust app, with its own consumer group (`WorkerSettings.validate_group`):
1. `getmany` a batch of posts.raw;
2. for each record: decode and validate (`pipeline.schema`); a bad one becomes a dead
   letter; a valid one is matched against the live watchlist, and only a post that
   mentions a watched brand is written to posts.valid (its language detected if it came
   without one); the others are counted and stop here;
3. wait until the broker has acknowledged every record the batch wrote, then commit the
   batch's offsets: at least once, a crash loses no post. A redelivered post is written
   again and the score stage's dedup (agents/score.py) drops the copy.
A record Kafka cannot take for its size becomes a `too_large` dead letter, as with the
Faust stages' `Outlet`. If the writes fail (Kafka away longer than the producer's
timeout), the batch is read again from its first offset after a pause.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import faust
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)

from agents.app import AgentContext
from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key, too_large_errors
from pipeline.kafka_clients import aiokafka_config
from pipeline.language import detect_language
from pipeline.limits import MAX_MESSAGE_BYTES, fits
from pipeline.liveness import Liveness
from pipeline.records import post_key
from pipeline.schema import InvalidRecord, decode_post, fill_language
from pipeline.settings import KafkaSettings, WorkerSettings
from pipeline.topics import POSTS_DLQ, POSTS_RAW, POSTS_VALID
from pipeline.watchlist_watch import WatchlistWatcher

__all__ = ["ValidateLoop", "ValidateStage", "Verdict", "register"]

log = logging.getLogger(__name__)
STAGE = "validate"
# Records a batch may hold: large batches amortise the loop's per-batch costs (the
# acknowledgement wait and the commit); a batch of posts is a few MB at most.
BATCH_RECORDS = 5000
POLL_TIMEOUT_MS = 200
RETRY_PAUSE_S = 5.0
LAG_INTERVAL_S = 10.0
LIVENESS_SOURCE = "validate"
_SIZE_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)


class Verdict(NamedTuple):
    """What becomes of one raw record: `kind` is "valid" (write `value` to posts.valid),
    "unmatched" (a valid post about no watched brand: counted, not written) or "invalid"
    (write the dead letter `value` to posts.dlq, `reason` for the count)."""

    kind: str
    key: bytes | None = None
    value: bytes = b""
    reason: str = ""


@dataclass
class ValidateStage:
    """The per-record decision, free of Kafka (unit-tested in tests/unit)."""

    watchlist: WatchlistWatcher
    max_bytes: int
    source_topic: str

    def check(self, key: bytes | None, value: bytes | None, partition: int,
              offset: int) -> Verdict:
        try:
            # No language detector here: detection is for the posts that go on.
            post = decode_post(value, max_bytes=self.max_bytes)
        except InvalidRecord as invalid:
            # Bounded whatever the original's size (a prefix, its size and its hash).
            return Verdict("invalid", dead_letter_key(key), dead_letter(
                STAGE, invalid.errors, key=key, original=value, topic=self.source_topic,
                partition=partition, offset=offset, reason=invalid.reason, dlq=POSTS_DLQ),
                invalid.reason)
        if not self.watchlist.watchlist.match(post["text"]):
            return Verdict("unmatched")
        fill_language(post, detect_language)
        return Verdict("valid", post_key(post).encode(), orjson.dumps(post))


class _Pending(NamedTuple):
    topic: str
    key: bytes | None
    value: bytes
    delivery: asyncio.Future[Any]


class ValidateLoop:
    """The loop's Kafka side: one consumer, one producer, batches committed once written."""

    def __init__(self, stage: ValidateStage, kafka: KafkaSettings, worker: WorkerSettings,
                 liveness: Liveness) -> None:
        self.stage = stage
        self.kafka = kafka
        self.worker = worker
        self.liveness = liveness
        self.raw_topic = kafka.topic(POSTS_RAW)
        self.valid_topic = kafka.topic(POSTS_VALID)
        self.dlq_topic = kafka.topic(POSTS_DLQ)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        # Held while a batch is in flight: a rebalance waits for its commit.
        self.batch_lock = asyncio.Lock()
        self.stopping = asyncio.Event()
        self.committed: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        connection = aiokafka_config(self.kafka)
        self.producer = AIOKafkaProducer(
            **connection, client_id=f"{self.worker.app_id}-validate", acks="all",
            compression_type="lz4", linger_ms=20, max_batch_size=262_144,
            max_request_size=MAX_MESSAGE_BYTES)
        self.consumer = AIOKafkaConsumer(
            **connection, client_id=f"{self.worker.app_id}-validate",
            group_id=self.worker.validate_group, enable_auto_commit=False,
            # A worker started after the producers must still see their posts.
            auto_offset_reset="earliest", max_poll_records=BATCH_RECORDS,
            session_timeout_ms=int(self.worker.session_timeout_s * 1000),
            heartbeat_interval_ms=2000, metadata_max_age_ms=30_000)
        await self.producer.start()
        await self.consumer.start()
        self.consumer.subscribe([self.raw_topic], listener=_WaitForBatch(self))

    async def stop(self) -> None:
        for client in (self.consumer, self.producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:  # stopping must go on whatever the broker says
                    log.warning("validate: stopping a Kafka client: %s", exc)

    async def run(self) -> None:
        """Batches until `stopping` is set (a batch in flight is finished first)."""
        assert self.consumer is not None
        while not self.stopping.is_set():
            batch = await self.consumer.getmany(timeout_ms=POLL_TIMEOUT_MS,
                                                max_records=BATCH_RECORDS)
            if batch:
                async with self.batch_lock:
                    await self.handle(batch)

    async def handle(self, batch: dict[TopicPartition, list[Any]]) -> None:
        assert self.consumer is not None
        verdicts = [(record, self.stage.check(record.key, record.value, record.partition,
                                              record.offset))
                    for records in batch.values() for record in records]
        try:
            pending = [await self.send(*output) for output in self.outputs(verdicts)]
            await self.settle([p for p in pending if p is not None])
        except KafkaError as exc:
            # Not written (Kafka away longer than the producer waits): read it again.
            log.warning("validate: a batch of %d records could not be written (%s); "
                        "reading it again in %.0f s", len(verdicts), exc, RETRY_PAUSE_S)
            for tp, records in batch.items():
                self.consumer.seek(tp, records[0].offset)
            await asyncio.sleep(RETRY_PAUSE_S)
            return
        self.count(verdicts)
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance took the partitions meanwhile: their new owner reads the batch
            # again (at least once; score's dedup drops the copies).
            log.warning("validate: commit refused (%s); the batch will be read again", exc)
            return
        self.committed.update(offsets)

    def outputs(self, verdicts: Iterable[tuple[Any, Verdict]]
                ) -> Iterable[tuple[str, bytes | None, bytes]]:
        for _record, verdict in verdicts:
            if verdict.kind == "valid":
                yield self.valid_topic, verdict.key, verdict.value
            elif verdict.kind == "invalid":
                yield self.dlq_topic, verdict.key, verdict.value

    @staticmethod
    def count(verdicts: list[tuple[Any, Verdict]]) -> None:
        """Counted once the batch is written, so that a batch read again counts once."""
        valid = unmatched = 0
        for _record, verdict in verdicts:
            if verdict.kind == "invalid":
                metrics.POSTS_INVALID.labels(reason=verdict.reason).inc()
            else:
                valid += 1
                unmatched += verdict.kind == "unmatched"
        metrics.POSTS_VALID.inc(valid)
        metrics.POSTS_UNMATCHED.inc(unmatched)

    async def send(self, topic: str, key: bytes | None, value: bytes) -> _Pending | None:
        assert self.producer is not None
        if not fits(key, value):
            await self.too_large(topic, key, value)
            return None
        try:
            delivery = await self.producer.send(topic, value, key=key)
        except _SIZE_ERRORS:
            await self.too_large(topic, key, value)
            return None
        return _Pending(topic, key, value, delivery)

    async def settle(self, pending: list[_Pending]) -> None:
        """Wait for the broker's answers; a record refused for its size (a topic created
        elsewhere with a smaller limit) is dead-lettered, any other refusal raises."""
        answers = await asyncio.gather(*(p.delivery for p in pending), return_exceptions=True)
        for sent, answer in zip(pending, answers, strict=True):
            if isinstance(answer, _SIZE_ERRORS):
                await self.too_large(sent.topic, sent.key, sent.value, wait=True)
            elif isinstance(answer, BaseException):
                raise answer

    async def too_large(self, topic: str, key: bytes | None, value: bytes,
                        wait: bool = False) -> None:
        assert self.producer is not None
        size = len(key or b"") + len(value)
        metrics.RECORDS_TOO_LARGE.labels(stage=STAGE, topic=topic).inc()
        log.error("%s: a record of %d bytes cannot be written to %s; dead-lettered on %s",
                  STAGE, size, topic, self.dlq_topic)
        if topic == self.dlq_topic:
            return  # a dead letter always fits; never loop on a topic that refuses it
        letter = dead_letter(STAGE, too_large_errors(size, topic), key=key, original=value,
                             topic=topic, partition=-1, offset=-1, reason="too_large",
                             dlq=POSTS_DLQ)
        delivery = await self.producer.send(self.dlq_topic, letter, key=dead_letter_key(key))
        if wait:
            await delivery

    async def read_offsets(self) -> tuple[dict[Any, int | None], dict[Any, int | None]]:
        """(committed, end offsets) of the partitions this loop holds, from the broker."""
        assert self.consumer is not None
        held = sorted(self.consumer.assignment(), key=lambda tp: tp.partition)
        if not held:
            return {}, {}
        ends = await self.consumer.end_offsets(held)
        committed = {tp: await self.consumer.committed(tp) for tp in held}
        return committed, dict(ends)

    async def watch_offsets(self) -> None:
        """Every LAG_INTERVAL_S: posts.raw's lag for /metrics, and the reading /live judges
        (a loop that no longer commits while records wait fails the probe)."""
        self.liveness.watch(LIVENESS_SOURCE)
        while not self.stopping.is_set():
            try:
                committed, ends = await self.read_offsets()
                self.liveness.observe(committed, ends, source=LIVENESS_SOURCE)
                lags = metrics.consumer_lag_by_topic(committed, ends)
                metrics.record_consumer_lag(lags)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka away: the kafka link reports it
                log.debug("validate: no offset reading this time: %s", exc)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=LAG_INTERVAL_S)
            except TimeoutError:
                pass


class _WaitForBatch(ConsumerRebalanceListener):
    """Partitions leave this worker only after the batch in flight is committed."""

    def __init__(self, loop: ValidateLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.loop.batch_lock:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class ValidateService(faust.Service):
    """Starts the loop with the Faust app and stops it with it: the batch in flight is
    written and committed before the clients close."""

    loop_: ValidateLoop

    async def on_start(self) -> None:
        await self.loop_.start()
        self._tasks = [asyncio.ensure_future(self._guarded(self.loop_.run())),
                       asyncio.ensure_future(self.loop_.watch_offsets())]

    async def _guarded(self, work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            # The loop stops committing; /live then fails (records wait on posts.raw and
            # its committed offset does not move) and the orchestrator restarts the worker.
            log.exception("validate: the loop stopped")

    async def on_stop(self) -> None:
        self.loop_.stopping.set()
        started = time.monotonic()
        done, pending = await asyncio.wait(self._tasks, timeout=30.0)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("validate: stopped after %.0f s without finishing its batch",
                        time.monotonic() - started)
        await self.loop_.stop()


def register(context: AgentContext) -> None:
    """Start the validate loop with the app (it is not a Faust agent: see the docstring)."""
    stage = ValidateStage(context.watchlist, context.worker.max_record_bytes,
                          context.kafka.topic(POSTS_RAW))
    loop = ValidateLoop(stage, context.kafka, context.worker, context.liveness)

    class BoundValidateService(ValidateService):
        loop_ = loop

    context.app.service(BoundValidateService)
