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
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

__all__ = ["VigieApp", "VigieConsumer", "VigieTransport", "settle_acked"]


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


class VigieTransport(faust_aiokafka.Transport):
    Consumer = VigieConsumer


class VigieApp(faust.App):
    """The Faust app on `VigieTransport` (the broker URL still says kafka://)."""

    def _new_transport(self) -> Any:
        return VigieTransport(self.conf.broker_consumer, self)
