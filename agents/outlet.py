"""A stage's output topic, written so that a record Kafka cannot take becomes a dead letter.

Faust hands `send_soon` records to a buffer task; aiokafka refuses a record over the
producer's `max_request_size` inside that task, and the uncaught error stopped the whole
worker (issue 13: one 800 KB post, its dead letter 1.07 MB). So every record is measured
before Faust sees it (`pipeline.limits.fits`): one that cannot be written goes to the
stage's dead-letter topic as a bounded copy (reason `too_large`), and the worker goes on.
A broker that still refuses a record for its size (a topic created elsewhere with a
smaller `max.message.bytes`) answers later; that answer is dead-lettered the same way.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

import faust
from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError

from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key, too_large_errors
from pipeline.limits import fits

__all__ = ["Outlet"]

log = logging.getLogger(__name__)
_SIZE_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError)


def _is_size_error(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, _SIZE_ERRORS):
            return True
        exc = exc.__cause__  # Faust wraps aiokafka's error in ProducerSendError
    return False


class Outlet:
    """Writes records to `topic`; what cannot be written is dead-lettered on `dlq`
    (`dlq_name`: its logical name, for the dead-letter count)."""

    def __init__(self, topic: faust.TopicT, dlq: faust.TopicT, dlq_name: str,
                 stage: str) -> None:
        self.topic = topic
        self.dlq = dlq
        self.dlq_name = dlq_name
        self.stage = stage

    def send_soon(self, key: bytes | None, value: bytes) -> None:
        """Buffered (Faust flushes it before committing the input's offset)."""
        if not fits(key, value):
            self._too_large(key, value)
            return
        future = self.topic.send_soon(key=key, value=value)
        future.add_done_callback(partial(self._answered, key, value))

    async def send(self, key: bytes | None, value: bytes) -> None:
        if not fits(key, value):
            self._too_large(key, value)
            return
        try:
            future = await self.topic.send(key=key, value=value)
        except Exception as exc:
            if not _is_size_error(exc):
                raise
            self._too_large(key, value)
            return
        if isinstance(future, asyncio.Future):
            future.add_done_callback(partial(self._answered, key, value))

    def _answered(self, key: bytes | None, value: bytes, future: asyncio.Future) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if _is_size_error(error):
            self._too_large(key, value)

    def _too_large(self, key: bytes | None, value: bytes) -> None:
        topic = self.topic.get_topic_name()
        size = len(key or b"") + len(value)
        metrics.RECORDS_TOO_LARGE.labels(stage=self.stage, topic=topic).inc()
        log.error("%s: a record of %d bytes cannot be written to %s; dead-lettered on %s",
                  self.stage, size, topic, self.dlq.get_topic_name())
        if self.dlq is self.topic:
            return  # a dead letter always fits; never loop on a topic that refuses it
        letter = dead_letter(self.stage, too_large_errors(size, topic), key=key,
                             original=value, topic=topic, partition=-1, offset=-1,
                             reason="too_large", dlq=self.dlq_name)
        self.dlq.send_soon(key=dead_letter_key(key), value=letter)
