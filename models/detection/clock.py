"""Event time for the detector: how far the stream has got, and which intervals may close.

Posts reach the detector out of order. The score stage reads its input partitions at
different speeds (a backfill replayed as fast as it goes can run one partition hours
ahead of another), sources deliver late, and a source with a broken clock may date a post
a day ahead. So no single post says what time it is; the detector follows a watermark:

- `SourceProgress`, kept by each score worker, follows every input partition it reads:
  the event time the partition has reached (the *second* newest `created_at` read there,
  never ahead of the wall clock: one post dated in the future moves nothing), whether the
  worker is caught up on it (it has read every record written to it so far), and whether
  it is live (its newest post arrived within `LIVE_HORIZON` of its creation). Its
  `report()` travels with the clock ticks the score stage puts on `mentions.scored`,
  after the mentions of the posts it has read, in each brand's partition.
- `Watermark`, kept in each brand's detector state, merges those reports. Its value is the
  event time that every input partition still holding unread records has reached: no
  mention older than that can still come, save for lateness. A partition that has stayed
  caught up for `IDLE_GRACE` holds nothing back (caught up for a moment is not enough: the
  stage upstream may still be writing it); when every partition is, the value is the newest
  time reached,
  and on a live stream the wall clock less `LIVE_GRACE`, so that a quiet brand's intervals
  close on time. There is one clock model for live streams and replays.
- `BrandClock`: one brand's open interval; where a mention of a given time goes (counted
  in the open interval, held for a later one, or refused as too late); which intervals a
  watermark closes.

>>> from datetime import UTC, datetime, timedelta
>>> t0 = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
>>> minute = timedelta(minutes=1)
>>> source = SourceProgress()
>>> for offset, at in enumerate([t0, t0 + 5 * minute, t0 + 9 * minute]):
...     source.observe(0, offset, at, now=t0 + 60 * minute)   # partition 0 is ahead
>>> source.observe(1, 0, t0 + 2 * minute, now=t0 + 60 * minute)
>>> source.observe(1, 1, t0 + 3 * minute, now=t0 + 60 * minute)
>>> report = source.report(2, {0: 10, 1: 10}, now=t0 + 60 * minute)  # neither caught up
>>> watermark = Watermark()
>>> watermark.merge(report)
>>> watermark.value() == t0 + 2 * minute       # the slow partition's second newest post
True
>>> clock = BrandClock(60, lateness=timedelta(minutes=2))
>>> placed = clock.place(t0)                   # no interval open yet: held for later
>>> placed.kind
'held'
>>> clock.hold(placed.start)
True
>>> [(i.start.minute, i.held) for i in clock.advance(watermark.value())]
[(0, True), (1, False)]
>>> clock.place(t0 + 2 * minute).kind, clock.place(t0 + minute).kind
('open', 'late')
>>> clock.place(t0 - 5 * minute).kind
'too_late'
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "IDLE_GRACE",
    "LIVE_GRACE",
    "LIVE_HORIZON",
    "MAX_INTERVALS_PER_STEP",
    "BrandClock",
    "Interval",
    "Placement",
    "SourceProgress",
    "Watermark",
    "interval_start",
]

# A partition whose newest post arrived less than this after it was written is live: its
# clock may follow the wall clock when nothing is left to read. A replay of past days runs
# hours behind and never does; a live source is seconds to minutes behind.
LIVE_HORIZON = timedelta(minutes=10)
# On a live stream with nothing left to read, intervals close this long behind the wall
# clock, so that a post in flight still lands in its own interval.
LIVE_GRACE = timedelta(seconds=5)
# A reader is "caught up" on a partition whenever it has read what was written so far, which
# in a backfill happens for a moment each time the upstream stage is slower than it: the
# partition is still being written, with older times than the others have reached. So a
# caught-up partition stops holding the watermark back only after it has stayed caught up
# this long (wall time between reports); until then its own time still bounds the watermark.
IDLE_GRACE = timedelta(seconds=30)
# After a long silence (a stopped pipeline, a gap in a replay) the clock jumps instead of
# closing every missed interval one by one.
MAX_INTERVALS_PER_STEP = 1440


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _parse(text: Any) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO 8601 time, got {text!r}")
    return _utc(datetime.fromisoformat(text))


def interval_start(moment: datetime, seconds: int) -> datetime:
    """The start of the `seconds`-long interval holding `moment` (aligned on the epoch)."""
    epoch = int(_utc(moment).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


# -- the score stage's side ----------------------------------------------------------------
@dataclass
class _Reading:
    """What one worker has read of one input partition."""

    offset: int = -1  # the last offset read
    newest: datetime | None = None  # newest created_at read (at most the wall clock)
    second: datetime | None = None  # second newest: the time the partition has reached
    live: bool = False  # the newest post arrived within LIVE_HORIZON of its creation
    fresh: bool = False  # a record was read since the last report


class SourceProgress:
    """One reader's progress through the partitions of its input topic (see module doc)."""

    def __init__(self) -> None:
        self._readings: dict[int, _Reading] = {}

    def observe(self, partition: int, offset: int, created_at: datetime | None,
                now: datetime) -> None:
        """A record was read (and whatever it led to was sent): `created_at` None if unknown."""
        reading = self._readings.setdefault(partition, _Reading())
        reading.offset = max(reading.offset, offset)
        reading.fresh = True
        try:
            moment = None if created_at is None else _utc(created_at)
        except (OverflowError, ValueError):  # e.g. year 1 at +14:00: no UTC time
            moment = None
        if moment is None:
            return
        # A post dated ahead of the wall clock is a broken source clock: it counts as now.
        moment = min(moment, now)
        if reading.newest is None or moment >= reading.newest:
            reading.second, reading.newest = reading.newest, moment
            reading.live = now - moment <= LIVE_HORIZON
        elif reading.second is None or moment > reading.second:
            reading.second = moment

    def report(self, partitions: int, highwaters: Mapping[int, int | None],
               now: datetime) -> dict[str, Any]:
        """The progress of the partitions this worker reads now, for a clock tick.

        `highwaters` maps each partition assigned to this worker to the offset the next
        record written there will get (None while unknown): a worker whose last read offset
        is just below it is caught up on that partition.
        """
        progress: dict[str, dict[str, Any]] = {}
        for partition, highwater in sorted(highwaters.items()):
            reading = self._readings.get(partition, _Reading())
            caught_up = highwater is not None and reading.offset + 1 >= highwater
            reached = reading.second
            if caught_up and reading.live:
                floor = now - LIVE_GRACE
                reached = floor if reached is None else max(reached, floor)
            # Idle: caught up, and nothing came since the last report (a partition that
            # keeps receiving records is being written, however fast it is read).
            progress[str(partition)] = {"time": _iso(reached),
                                        "idle": caught_up and not reading.fresh}
            reading.fresh = False
        return {"partitions": partitions, "at": now.isoformat(), "progress": progress}


# -- the detector's side -------------------------------------------------------------------
@dataclass
class _Partition:
    time: datetime | None = None  # event time reached (only ever moves forward)
    idle: bool = False  # caught up, in the latest report about it
    reported: datetime | None = None  # wall time of that report
    idle_since: datetime | None = None  # wall time of the first report of this idle run


class Watermark:
    """The merged progress of every input partition, and the event time it makes safe."""

    def __init__(self) -> None:
        self.partitions = 0
        self._states: dict[int, _Partition] = {}

    def merge(self, report: Mapping[str, Any]) -> None:
        """Fold one `SourceProgress.report()` in; ValueError when it is malformed."""
        try:
            partitions = int(report["partitions"])
            at = _parse(report["at"])
            progress = report["progress"].items()
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed progress report: {exc!r}") from None
        if partitions < 1 or at is None:
            raise ValueError("malformed progress report: no partitions or no time")
        self.partitions = partitions
        for key, entry in progress:
            try:
                partition = int(key)
                time = _parse(entry.get("time"))
                idle = bool(entry["idle"])
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise ValueError(f"malformed progress of partition {key!r}: {exc!r}") from None
            state = self._states.setdefault(partition, _Partition())
            if time is not None and (state.time is None or time > state.time):
                state.time = time
            # Reports of two workers (before and after a rebalance) may arrive in any order:
            # the newest says whether the partition is caught up.
            if state.reported is None or at >= state.reported:
                if not idle:
                    state.idle_since = None
                elif not state.idle or state.idle_since is None:
                    state.idle_since = at
                state.idle, state.reported = idle, at

    def value(self) -> datetime | None:
        """The watermark, or None while some input partition was never reported."""
        if self.partitions < 1:
            return None
        states = [self._states.get(partition) for partition in range(self.partitions)]
        if any(state is None for state in states):
            return None
        known = [state for state in states if state is not None]
        latest = max((state.reported for state in known if state.reported), default=None)
        # On a live stream a partition that never had a post holds nothing back: nothing
        # older is on its way. In a replay it waits IDLE_GRACE like the others, since the
        # stage upstream may not have written its first post yet.
        live = latest is not None and any(
            state.time is not None and latest - state.time <= LIVE_HORIZON for state in known)
        holding = [state for state in known
                   if not self._released(state, latest)
                   and not (live and state.idle and state.time is None)]
        if holding:
            times = [state.time for state in holding]
            if any(time is None for time in times):
                return None
            return min(time for time in times if time is not None)
        reached = [state.time for state in known if state.time is not None]
        return max(reached) if reached else None

    @staticmethod
    def _released(state: _Partition, latest: datetime | None) -> bool:
        """A partition stops bounding the watermark once it has been caught up IDLE_GRACE."""
        if not state.idle:
            return False
        if state.idle_since is None or latest is None:  # a state saved before idle_since
            return True
        return latest - state.idle_since >= IDLE_GRACE

    def to_state(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "progress": {str(partition): {"time": _iso(state.time), "idle": state.idle,
                                          "reported": _iso(state.reported),
                                          "idle_since": _iso(state.idle_since)}
                         for partition, state in sorted(self._states.items())},
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Watermark:
        watermark = cls()
        watermark.partitions = int(state.get("partitions", 0))
        for key, entry in (state.get("progress") or {}).items():
            watermark._states[int(key)] = _Partition(
                _parse(entry.get("time")), bool(entry.get("idle")), _parse(entry.get("reported")),
                _parse(entry.get("idle_since")))
        return watermark


@dataclass(frozen=True)
class Placement:
    """Where a mention of a given time goes: see `BrandClock.place`."""

    kind: str  # "open", "late", "held" or "too_late"
    start: datetime | None = None  # the later interval a held mention waits for


@dataclass(frozen=True)
class Interval:
    """An interval the watermark closes. `held`: mentions of it were held until it opened."""

    start: datetime
    end: datetime
    held: bool = False


class BrandClock:
    """One brand's open interval, the mentions held for later ones, and its watermark."""

    def __init__(self, seconds: int, lateness: timedelta, open_start: datetime | None = None,
                 held: list[int] | None = None, watermark: Watermark | None = None) -> None:
        if seconds < 1:
            raise ValueError("seconds must be >= 1")
        self.seconds = seconds
        self.step = timedelta(seconds=seconds)
        self.lateness = lateness
        self.open_start = None if open_start is None else _utc(open_start)
        # Starts (epoch seconds) of the later intervals that mentions wait for.
        self.held = sorted(set(held or ()))
        self.watermark = watermark or Watermark()

    def place(self, moment: datetime) -> Placement:
        """Where a mention created at `moment` is counted.

        - "open": in the open interval;
        - "late": before the open interval by no more than the allowed lateness: counted
          in the open interval (its own is closed);
        - "held": in a later interval, not open yet (or before any interval opened): the
          mention waits for it; it never moves the clock;
        - "too_late": earlier still: refused (dead-lettered).
        """
        moment = _utc(moment)
        start = interval_start(moment, self.seconds)
        if self.open_start is None or start > self.open_start:
            return Placement("held", start)
        if start == self.open_start:
            return Placement("open")
        if self.open_start - moment <= self.lateness:
            return Placement("late")
        return Placement("too_late")

    def hold(self, start: datetime) -> bool:
        """Remember that mentions wait for the interval starting at `start`; False when it
        was already remembered."""
        epoch = int(_utc(start).timestamp())
        if epoch in self.held:
            return False
        insort(self.held, epoch)
        return True

    def take_open_held(self) -> bool:
        """Whether mentions were held for the open interval; they are to be added now."""
        if self.open_start is None:
            return False
        epoch = int(self.open_start.timestamp())
        if self.held and self.held[0] == epoch:
            self.held.pop(0)
            return True
        return False

    def advance(self, until: datetime) -> list[Interval]:
        """Close every interval that ends at or before `until`, in order.

        Before a mention of the open interval is counted, the caller adds what was held for
        it (`take_open_held`); each returned interval says whether mentions were held for it.
        """
        until = _utc(until)
        closed: list[Interval] = []
        if self.open_start is None:
            first = interval_start(until, self.seconds)
            if self.held:
                first = min(first, datetime.fromtimestamp(self.held[0], UTC))
            self.open_start = first
        while self.open_start + self.step <= until:
            start = self.open_start
            epoch = int(start.timestamp())
            held = bool(self.held) and self.held[0] == epoch
            if held:
                self.held.pop(0)
            closed.append(Interval(start, start + self.step, held))
            self.open_start = start + self.step
            self._skip_silence(until)
        return closed

    def _skip_silence(self, until: datetime) -> None:
        """Jump over a silence longer than MAX_INTERVALS_PER_STEP intervals (up to `until`
        or to the next interval that holds mentions): only its last
        MAX_INTERVALS_PER_STEP - 1 empty intervals are closed one by one."""
        assert self.open_start is not None
        silence_end = interval_start(until, self.seconds)
        if self.held:
            silence_end = min(silence_end, datetime.fromtimestamp(self.held[0], UTC))
        if silence_end - self.open_start > self.step * MAX_INTERVALS_PER_STEP:
            self.open_start = silence_end - self.step * (MAX_INTERVALS_PER_STEP - 1)

    def to_state(self) -> dict[str, Any]:
        return {"open_start": _iso(self.open_start), "held": list(self.held),
                "watermark": self.watermark.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], seconds: int,
                   lateness: timedelta) -> BrandClock:
        watermark = state.get("watermark")
        return cls(seconds, lateness, _parse(state.get("open_start")),
                   [int(epoch) for epoch in state.get("held") or ()],
                   Watermark.from_state(watermark) if watermark else None)
