"""Offsets are committed only once Faust's producer buffer has passed on every record
(agents/transport.py).

Faust's own buffer flush returns after 0.1 s without a record sent, whatever is still
queued; the consumer then commits offsets whose changelog records were not written yet.
A real `ProducerBuffer` whose records take 0.3 s each to go out (a slow broker) shows it.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.transport.producer import ProducerBuffer

from agents.transport import FlushStalled, drain_buffer


class SlowRecord:
    """A queued record whose send takes `send_s` (what the buffer's sender awaits)."""

    def __init__(self, number: int, send_s: float, sent: list[int]) -> None:
        self.number, self.send_s, self.sent = number, send_s, sent
        self.message = SimpleNamespace(channel=self)

    async def publish_message(self, _fut: object, wait: bool = False) -> None:
        await asyncio.sleep(self.send_s)
        self.sent.append(self.number)


def buffer_of(records: int, send_s: float, sent: list[int]) -> ProducerBuffer:
    buffer = ProducerBuffer()
    buffer.app = SimpleNamespace(conf=SimpleNamespace(producer_threaded=False))
    for number in range(records):
        buffer.put(SlowRecord(number, send_s, sent))
    return buffer


def test_the_flush_before_a_commit_waits_for_every_queued_record() -> None:
    async def go() -> tuple[list[int], list[int]]:
        sent: list[int] = []
        buffer = buffer_of(4, 0.3, sent)
        await buffer.start()
        await buffer.flush()  # Faust's: gives up after 0.1 s without a send
        after_faust = list(sent)
        await drain_buffer(buffer)
        after_drain = list(sent)
        await buffer.stop()
        return after_faust, after_drain

    after_faust, after_drain = asyncio.run(go())
    assert len(after_faust) < 4, "Faust's flush returned with records still queued"
    assert after_drain == [0, 1, 2, 3]


def test_a_buffer_that_sends_nothing_fails_the_flush_instead_of_returning() -> None:
    async def go() -> None:
        buffer = buffer_of(2, 60.0, [])
        await buffer.start()
        await drain_buffer(buffer, stall_s=0.5)  # asyncio.run cancels the sender after

    with pytest.raises(FlushStalled, match="sent nothing for 0 s with 1 records queued"):
        asyncio.run(go())
