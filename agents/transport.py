"""Faust's Kafka transport, with a consumer whose committed offsets keep up after a restart.

Faust commits, per partition, the end of the first run of consecutive offsets in the list
of acknowledged ones (`Consumer._new_offset`). Right after a worker (re)starts, Faust's
fetcher runs for a moment before the recovery seeks the partitions to their committed
offsets (faust-streaming #216), so the first few hundred records of a partition can be
read and acknowledged twice. The list then holds each of those offsets twice
(575, 576, 576, 577, 577, ... was observed), every run of consecutive numbers is one or
two long, and each commit advanced the partition by one or two offsets: 1,100-2,100
records of a partition stayed uncommitted for minutes although all were processed, lag
metrics and alerts showed false lag, and a crash then would have re-read them all.

`VigieConsumer` drops repeated offsets and offsets already committed before Faust looks
for the run; nothing else of Faust's bookkeeping changes.

Faust commits offsets only after flushing its producer, so that the table writes
(changelog records) of the records it commits are in Kafka first. But its buffer's flush
(`ProducerBuffer.flush_atmost`) gives up, silently, when no record left the buffer for 0.1
s (a slow broker, a full send queue): the offsets were then committed with changelog
records still queued, and a crash at that moment lost those states. `VigieProducer`
drains the buffer completely before the commit, and raises if it makes no progress for
`FLUSH_STALL_S` (the commit fails and the records are read again, rather than lost).
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = ["FlushStalled", "VigieApp", "VigieConsumer", "VigieProducer", "VigieTransport",
           "drain_buffer", "settle_acked"]

# A buffer that sends nothing for this long has a broker problem, not a slow moment; the
# producer's own request timeout is 30 s and aiokafka retries within it.
FLUSH_STALL_S = 120.0


def settle_acked(acked: list[int], committed: int | None) -> list[int]:
    """The acknowledged offsets Faust should look at: each once, sorted, none below the
    committed offset (Kafka's: the next offset to read)."""
    offsets = set(acked)
    if committed is not None:
        offsets = {offset for offset in offsets if offset >= committed}
    return sorted(offsets)


class VigieConsumer(faust_aiokafka.Consumer):
    def _new_offset(self, tp: TP) -> int | None:
        acked = self._acked[tp]
        if acked:
            settled = settle_acked(acked, self._committed_offset[tp])
            if len(settled) != len(acked):
                self._acked_index[tp].difference_update(set(acked) - set(settled))
                acked[:] = settled  # in place: Faust holds this list
        return super()._new_offset(tp)


class FlushStalled(RuntimeError):
    """The producer buffer sent nothing for too long: nothing may be committed."""


class _Marker:
    """Queued behind everything in the buffer: when the buffer's sender reaches it, every
    record before it has been handed to the Kafka client (the buffer is FIFO, its sender
    one task; a record taken off the queue may still be on its way, so the queue's size
    alone does not say that)."""

    def __init__(self, reached: asyncio.Future[None]) -> None:
        self.reached = reached
        self.message = self
        self.channel = self

    async def publish_message(self, _fut: Any, wait: bool = False) -> None:
        if not self.reached.done():
            self.reached.set_result(None)


async def drain_buffer(buffer: Any, stall_s: float = FLUSH_STALL_S) -> None:
    """Wait until every record handed to Faust's producer buffer so far has been passed on
    to the Kafka client (whose own flush then waits for the broker)."""
    loop = asyncio.get_running_loop()
    reached: asyncio.Future[None] = loop.create_future()
    buffer.put(_Marker(reached))
    last_progress = loop.time()
    while not reached.done():
        queued = buffer.size - 1  # ahead of the marker
        if buffer.state != "running":
            raise FlushStalled(f"producer buffer stopped with {queued} records queued")
        buffer.message_sent.clear()
        try:
            await asyncio.wait_for(buffer.message_sent.wait(), timeout=0.1)
            last_progress = loop.time()
        except TimeoutError:
            if loop.time() - last_progress > stall_s:
                raise FlushStalled(f"producer buffer sent nothing for {stall_s:.0f} s with "
                                   f"{queued} records queued") from None


class VigieProducer(faust_aiokafka.Producer):
    async def flush(self) -> None:
        if not self.app.conf.producer_threaded:  # (Vigie's app never sets it)
            await drain_buffer(self.buffer)
        await super().flush()


class VigieTransport(faust_aiokafka.Transport):
    Consumer = VigieConsumer
    Producer = VigieProducer


class VigieApp(faust.App):
    """The Faust app on `VigieTransport` (the broker URL still says kafka://)."""

    def _new_transport(self) -> Any:
        return VigieTransport(self.conf.broker_consumer, self)
