"""Is this worker alive? The verdict behind `GET /live` (the Kubernetes liveness probe).

A TCP probe passes as long as the kernel accepts connections, even while the worker's
event loop hangs or its consumer has silently stopped. `/live` fails (503, with the
reason) when:
- the event loop is stalled: a loop task beats every second; a beat older than
  `loop_stall_s` means something blocks the loop (a request served on the loop itself
  then also times out, which fails the probe as well);
- the consumer is stuck: an assigned partition has records waiting (end offset beyond
  the committed offset) and its committed offset has not moved for `consumer_stall_s`;
- the consumer does not answer: no offset reading for `consumer_stall_s` (the reading
  asks the broker through the consumer).
A slow stage is not stuck: a backlog that is being worked through commits as it goes.
During a rebalance the clock of every partition restarts (nothing is consumed then).
A worker has more than one consumer (Faust's, and the validate loop's own aiokafka
consumer): each reports its readings under its own `source` name, and each is judged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_SOURCE", "Liveness"]

DEFAULT_SOURCE = "faust"


@dataclass
class _Progress:
    committed: int | None
    since: float  # when the committed offset last moved (or the partition was caught up)
    waiting: bool = False


@dataclass
class Liveness:
    loop_stall_s: float = 30.0
    consumer_stall_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    last_beat: float = field(init=False)
    # When each consumer (source) last gave an offset reading.
    _observed: dict[str, float] = field(default_factory=dict, init=False)
    _progress: dict[str, dict[Any, _Progress]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.last_beat = self.clock()
        self._observed[DEFAULT_SOURCE] = self.last_beat

    @property
    def last_observed(self) -> float:
        return min(self._observed.values())

    def restart(self) -> None:
        """The worker starts now: what happened before (loading the model) is no stall."""
        self.last_beat = self.clock()
        self._observed = dict.fromkeys(self._observed, self.last_beat)
        self._progress.clear()

    def watch(self, source: str) -> None:
        """Expect readings from `source` from now on (its clock starts now)."""
        self._observed[source] = self.clock()

    def beat(self) -> None:
        """Called by a task on the event loop, every second."""
        self.last_beat = self.clock()

    def observe(self, committed: Mapping[Any, int | None], end_offsets: Mapping[Any, int | None],
                rebalancing: bool = False, source: str = DEFAULT_SOURCE) -> None:
        """One reading of this worker's assigned partitions (Kafka offsets: the committed
        offset is the next to read, the end offset the next to be written)."""
        now = self.clock()
        self._observed[source] = now
        previous = self._progress.get(source, {})
        seen = {}
        for tp, end in end_offsets.items():
            done = committed.get(tp)
            before = previous.get(tp)
            waiting = end is not None and end > (done if done is not None else 0)
            moved = before is None or before.committed != done
            if rebalancing or moved or not waiting:
                seen[tp] = _Progress(done, now, waiting)
            else:
                seen[tp] = _Progress(done, before.since, waiting)
        self._progress[source] = seen  # partitions no longer assigned are forgotten

    def verdict(self) -> tuple[bool, str]:
        """(alive, reason): what `/live` answers."""
        now = self.clock()
        loop_age = now - self.last_beat
        if loop_age > self.loop_stall_s:
            return False, f"event loop stalled: last heartbeat {loop_age:.0f} s ago"
        for source, observed in sorted(self._observed.items()):
            reading_age = now - observed
            if reading_age > self.consumer_stall_s:
                which = "consumer" if source == DEFAULT_SOURCE else f"{source} consumer"
                return False, (f"{which} not answering: last offset reading "
                               f"{reading_age:.0f} s ago")
        stuck = sorted(
            (_name(tp), now - p.since)
            for progress in self._progress.values()
            for tp, p in progress.items()
            if p.waiting and now - p.since > self.consumer_stall_s
        )
        if stuck:
            where = ", ".join(name for name, _ in stuck[:5])
            return False, (f"consumer stuck: records wait on {where} and the committed "
                           f"offset has not moved for {max(age for _, age in stuck):.0f} s")
        return True, "alive"


def _name(tp: Any) -> str:
    """`topic[partition]` of a Faust/aiokafka TP or a (topic, partition) tuple."""
    topic, partition = (tp.topic, tp.partition) if hasattr(tp, "topic") else tp
    return f"{topic}[{partition}]"
