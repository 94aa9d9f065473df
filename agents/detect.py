"""The `detect` agent: mentions.scored (key = brand) -> per-brand detector -> incidents.

Each brand's detector state lives in a Faust table keyed by brand id, so it is restored
from its changelog after a restart or a rebalance. Intervals follow event time (the posts'
created_at) as far as the watermark allows (models/detection/clock.py): the score stage's
clock ticks, which land in each brand's partition behind its mentions, say how far every
partition of posts.valid has been read, and an interval closes once every partition that
still holds unread posts has passed its end. A mention of a later interval is held (in a
table of its own, one tally per brand and interval) until its interval opens; no mention
moves the clock, so a backfill read faster on one partition than another loses nothing,
and a post dated a day ahead closes nobody's interval. Each mention of the open interval
is judged at once (early firing), so a steep wave is reported before its interval closes.

A restart re-reads the mentions after the last committed offset; the state remembers the
offset of the last record it counted, so nothing is counted twice, and incident events
carry (incident_id, sequence), so that a re-sent event is recognised downstream. A score
worker that stops before committing scores its last posts again, and their mentions come
at new offsets: a bounded record of the (brand, post) pairs counted in the last hour
(`agents/seen_table.py`, 64-bit hashes by the time the mention was sent, 8-16 bytes a
mention) keeps them from being counted twice.

Records are taken in short batches, and each brand's state is written once per batch
rather than once per mention: see `DetectStage.handle_batch` for the order of the writes
and why a crash anywhere in a batch still loses nothing and counts nothing twice. Only what
changed of a brand's state is written: its open interval with every batch, the rest when
an interval closes or the incident moves (agents/brand_store.py).
Incident events are sent as soon as the mention or tick that causes them is judged, not at
the batch's end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson

from agents.app import AgentContext
from agents.batches import make_current
from agents.brand_store import BrandState, BrandStore
from agents.outlet import Outlet
from agents.seen_table import SeenTable
from models.detection import (
    BrandClock,
    BrandMonitor,
    DetectorConfig,
    HeldTally,
    open_by_severity,
)
from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key
from pipeline.detect_settings import DetectionSettings
from pipeline.mentions import TICK_SCHEMA_VERSION
from pipeline.schema import FieldError, parse_timestamp
from pipeline.topics import MENTIONS_DLQ
from pipeline.watchlist import Watchlist

log = logging.getLogger(__name__)
STAGE = "detect"
# How long a counted (brand, post) pair is remembered, in the time mentions are sent: a
# score worker that restarts sends its re-scored mentions within seconds or minutes of the
# originals.
RECOUNT_HORIZON = timedelta(hours=1)
# A batch is what arrived within BATCH_WITHIN_S (or BATCH_SIZE records, when the stream is
# behind): a mention waits at most that long before it is judged (early firing is still
# prompt: 0.5 s against a goal of 60 s to the receiver), and a busy brand's state is
# written once per batch instead of once per mention. The state written with every batch
# (the open interval: counts, top posts, storylines with their vectors) was most of the
# event loop's work per mention at 0.1 s: 0.5 s gave 2.7x the rate one worker held with
# every post scored (bench/RESULTS.md).
BATCH_SIZE = 1000
BATCH_WITHIN_S = 0.5


def held_key(brand_id: str, start: datetime) -> str:
    return f"{brand_id}|{int(start.timestamp())}"


Events = list[dict[str, Any]]
SetCurrent = Callable[[faust.EventT], None]


@dataclass
class Batch:
    """What one batch of records changed that is not written to the tables yet.

    `changed` maps a brand to the last record that changed its state (whose partition the
    state's changelog record goes to); `held` (tallies of held mentions) is written before
    the states, `used_held` and `counted` after them, each with the record it came from."""

    brands: dict[str, BrandState] = field(default_factory=dict)
    # key -> (the tally, the record of its last mention)
    held: dict[str, tuple[HeldTally, faust.EventT]] = field(default_factory=dict)
    changed: dict[str, faust.EventT] = field(default_factory=dict)
    used_held: list[tuple[str, faust.EventT]] = field(default_factory=list)
    counted: dict[str, faust.EventT] = field(default_factory=dict)  # (brand, post) pairs
    brand_now: str | None = None  # the brand of the record being handled


class DetectStage:
    """The detect agent's steps, in the order a record meets them: load the brand's state,
    then either a tick advances the clock or a mention is counted, then the events are
    emitted and the gauges exported; the states are written once per batch. Decisions
    live in models/detection (`BrandClock`, `BrandMonitor`); these steps move records
    between them and the tables."""

    def __init__(self, context: AgentContext, settings: DetectionSettings,
                 recounts: SeenTable) -> None:
        app, topics, partitions = context.app, context.topics, context.kafka.partitions
        self.watchlists = context.watchlist
        self.base_config = settings.to_config()
        self.lateness = timedelta(seconds=settings.allowed_lateness_seconds)
        self.configs: dict[str, DetectorConfig] = {}
        self.live: dict[str, BrandState] = {}
        self.use_watchlist(context.watchlist.watchlist)
        context.watchlist.on_change(self.use_watchlist)
        self.states = app.Table("brand-detectors", default=None, partitions=partitions,
                                help="per-brand detector state (agents/brand_store.py)")
        self.store = BrandStore(self.states)
        self.held = app.Table("mentions-held", default=None, partitions=partitions,
                              help="tallies of mentions waiting for their interval to open")
        self.recounts = recounts
        self.incidents_out = Outlet(topics.incidents, topics.mentions_dlq, MENTIONS_DLQ, STAGE)
        self.dead_out = Outlet(topics.mentions_dlq, topics.mentions_dlq, MENTIONS_DLQ, STAGE)

    # -- brand state ---------------------------------------------------------------------

    def use_watchlist(self, watchlist: Watchlist) -> None:
        """Per-brand settings from this watchlist version: a new brand is counted from its
        next mention, a removed one is dead-lettered as unknown, and a brand whose
        thresholds changed is rebuilt from its table state with the new ones (from the
        next batch: the batch under way keeps the state it loaded)."""
        fresh = {brand_id: self.base_config.with_overrides(brand.thresholds)
                 for brand_id, brand in watchlist.brands.items()}
        for brand_id in [b for b in self.live if fresh.get(b) != self.configs.get(b)]:
            del self.live[brand_id]
        self.configs.clear()
        self.configs.update(fresh)

    def load_brand(self, brand_id: str, batch: Batch) -> BrandState:
        """The brand's state: the batch's own once it has loaded it; else the live object
        while the table agrees with it, else rebuilt from the table (after a restart, or
        when the partition comes back from another worker), which saves parsing the whole
        state on every batch."""
        loaded = batch.brands.get(brand_id)
        if loaded is not None:
            return loaded
        cached = self.live.get(brand_id)
        # (A brand with no state yet agrees with a cached one that has counted nothing:
        # the ticks it merged are kept.)
        written = self.store.last_offset(brand_id)
        if cached is not None and (-1 if written is None else written) == cached.last_offset:
            current = cached
        else:
            config = self.configs[brand_id]
            current = self.store.load(brand_id, config, self.lateness)
            if current is None:
                brand = self.watchlists.watchlist.brands[brand_id]
                current = BrandState(BrandMonitor(brand_id, brand.name, config),
                                     BrandClock(config.interval_seconds, self.lateness), -1)
            self.live[brand_id] = current
        batch.brands[brand_id] = current
        return current

    # -- one batch -------------------------------------------------------------------------

    async def handle_batch(self, events: Sequence[faust.EventT],
                           set_current: SetCurrent) -> None:
        """The records of one batch, in order; then each changed brand's state is written
        once (`write_batch`).

        Why a crash anywhere loses nothing and counts nothing twice: Faust acks a batch's
        records only when the agent asks for the next batch (`Stream.take_events`, after
        this returns), and commits the offsets of acked records only after flushing the
        producer (`Consumer._commit_offsets` awaits `producer.flush()` before committing,
        and `agents/transport.VigieProducer` makes that flush wait for every queued record).
        Every changelog record of the batch is queued before that, so a committed offset
        always has its states in the changelog. A crash before the commit re-reads the
        batch: a brand whose state was written skips the records it counted (its
        `last_offset`), one whose state was not counts them again from the state before
        the batch, and re-sends the same incident events, with the same (incident_id,
        sequence), which downstream recognises."""
        batch = Batch()
        try:
            for event in events:
                # Table writes and the windowed table's reads go to "the current event"
                # (its partition, its timestamp): set for each record (agents/batches.py).
                set_current(event)
                await self.handle(event, batch)
        except Exception:
            # A bug on one record: its brand may be half-changed, so it is rebuilt from
            # the table; what the batch counted for the other brands is kept.
            if batch.brand_now is not None:
                self.forget(batch, batch.brand_now)
            self.write_batch(batch, set_current)
            raise
        except BaseException:
            # Cancelled (a rebalance): the batch is read again from its offsets, so none
            # of its changes are kept in memory and none is written (its pairs are kept
            # only by `write_batch`).
            for brand_id in batch.brands:
                self.live.pop(brand_id, None)
            raise
        self.write_batch(batch, set_current)

    def forget(self, batch: Batch, brand_id: str) -> None:
        self.live.pop(brand_id, None)
        batch.changed.pop(brand_id, None)
        batch.held = {key: held for key, held in batch.held.items()
                      if not key.startswith(f"{brand_id}|")}
        batch.used_held = [(key, e) for key, e in batch.used_held
                           if not key.startswith(f"{brand_id}|")]
        batch.counted = {pair: e for pair, e in batch.counted.items()
                         if not pair.startswith(f"{brand_id}|")}

    def write_batch(self, batch: Batch, set_current: SetCurrent) -> None:
        """The held tallies, then each changed brand's state once (what changed of it, in
        the order `BrandStore.save` says), then the held tallies used up and the pairs
        counted. A crash between any two writes loses nothing and
        re-counts nothing: a tally written without its state is guarded by its offset
        when the mention is read again, a state written without its pairs has the
        mentions' offsets (the pairs only matter for mentions at new offsets), and a
        used-up tally left in the table is never read again (the clock no longer holds
        its interval)."""
        for key, (tally, event) in batch.held.items():
            set_current(event)
            self.held[key] = {"tally": tally.to_state(), "offset": event.message.offset}
        for brand_id, event in batch.changed.items():
            set_current(event)
            self.store.save(brand_id, batch.brands[brand_id])
        for key, event in batch.used_held:
            set_current(event)
            self.held.pop(key, None)
        last_events: dict[int, faust.EventT] = {}
        for pair, event in batch.counted.items():
            self.recounts.remember(event.message.partition, pair, sent_at(event))
            last_events[event.message.partition] = event
        self.recounts.write(last_events, set_current)

    # -- one record ------------------------------------------------------------------------

    async def handle(self, event: faust.EventT, batch: Batch) -> None:
        """One record of mentions.scored: a tick or a mention of the brand of its key."""
        brand_id = (event.key or b"").decode("utf-8", "replace")
        batch.brand_now = None
        if brand_id not in self.configs:
            await self.dead(event, "unknown_brand", f"brand {brand_id!r} is not in the watchlist")
            return
        try:
            record = orjson.loads(event.value)
            tick = record.get("tick")
            moment = None if tick else parse_timestamp(record.get("created_at"))
            if moment is not None:
                moment = moment.astimezone(UTC)
        except (orjson.JSONDecodeError, AttributeError, ValueError, OverflowError) as exc:
            await self.dead(event, "invalid_mention", str(exc))
            return
        batch.brand_now = brand_id
        brand = self.load_brand(brand_id, batch)
        if event.message.offset <= brand.last_offset:
            return  # counted before a restart
        if tick:
            await self.advance_clock(event, brand_id, brand, record, batch)
        else:
            assert moment is not None
            await self.count_mention(event, brand_id, brand, record, moment, batch)

    async def advance_clock(self, event: faust.EventT, brand_id: str, brand: BrandState,
                            record: dict[str, Any], batch: Batch) -> None:
        """A clock tick: merge the partitions' progress, close what the watermark allows."""
        if record.get("schema_version") != TICK_SCHEMA_VERSION:
            return  # a tick of an older version carries no progress
        try:
            brand.clock.watermark.merge(record["progress"])
        except (KeyError, TypeError, ValueError) as exc:
            await self.dead(event, "invalid_tick", str(exc))
            return
        opened_at = brand.clock.open_start
        events, used = self.close_intervals(brand_id, brand, batch)
        if brand.clock.open_start == opened_at and not events:
            # Most ticks close nothing: the state (100 KB and more) is not written
            # again for them. The merged progress rides with the next write, and a
            # restart re-reads these ticks (the offset stays where it was).
            return
        await self.commit(event, brand_id, brand, events, batch)
        batch.used_held += [(key, event) for key in used]
        self.export_gauges(brand_id, brand, events)

    async def count_mention(self, event: faust.EventT, brand_id: str, brand: BrandState,
                            record: dict[str, Any], moment: datetime, batch: Batch) -> None:
        """A mention: skipped if counted recently, dead-lettered if too late, held if its
        interval has not opened yet, else counted in the open interval and judged."""
        post_key = record.get("post_key")
        pair = f"{brand_id}|{post_key}" if post_key else None
        if pair is not None and (pair in batch.counted or self.recounts.seen_within(
                event.message.partition, pair, sent_at(event))):
            metrics.MENTIONS_RECOUNTED.labels(brand=brand_id).inc()
            return  # the same post, scored again after a score worker restart
        placement = brand.clock.place(moment)
        events: Events = []
        if placement.kind == "too_late":
            await self.dead(event, "too_late", f"created_at {moment.isoformat()} is more than "
                            f"{self.lateness} before the open interval "
                            f"({brand.clock.open_start.isoformat()})")
            await self.commit(event, brand_id, brand, events, batch)
            return
        try:
            if placement.kind == "held":
                assert placement.start is not None
                if not self.hold_mention(brand_id, brand, record, event, placement.start,
                                         batch):
                    # Its interval was already held for: the state has not changed, so
                    # it is not written for this record (the tally's offset guards a
                    # re-read).
                    if pair is not None:
                        batch.counted[pair] = event
                    return
            else:
                # A mention late by less than the allowed lateness counts in the open one.
                brand.monitor.add_mention(record)
                start = brand.clock.open_start
                assert start is not None
                events = brand.monitor.judge_open(start, moment)
        except ValueError as exc:
            await self.dead(event, "invalid_mention", str(exc))
        await self.commit(event, brand_id, brand, events, batch)
        if pair is not None:
            batch.counted[pair] = event  # written after the state
        if events:
            self.export_gauges(brand_id, brand, events)

    # -- held mentions and the clock -------------------------------------------------------

    def hold_mention(self, brand_id: str, brand: BrandState, record: dict[str, Any],
                     event: faust.EventT, start: datetime, batch: Batch) -> bool:
        """Add a mention of a later interval to that interval's tally (written at the
        batch's end); returns whether the brand's clock changed (its first mention held
        for that interval)."""
        key, offset = held_key(brand_id, start), event.message.offset
        tally, counted_to = self.held_tally(key, batch)
        if offset > counted_to:  # else counted before a crash
            # Counted into the batch's copy; stored once, at the batch's end.
            batch.held[key] = (brand.monitor.hold_mention(tally, record), event)
        return brand.clock.hold(start)

    def held_tally(self, key: str, batch: Batch) -> tuple[HeldTally | None, int]:
        """The tally held under `key` (this batch's, else the table's) and the offset of
        the last mention it counts (-1 if none)."""
        pending = batch.held.get(key)
        if pending is not None:
            return pending[0], pending[1].message.offset
        stored = self.held.get(key)
        if stored is None:
            return None, -1
        return HeldTally.from_state(stored["tally"]), int(stored["offset"])

    def add_held(self, brand_id: str, brand: BrandState, start: datetime,
                 batch: Batch) -> str:
        """Add to the open interval what was held for it; returns the table key used. (A
        tally of this batch is not written at all: the state that counts it is.)"""
        key = held_key(brand_id, start)
        tally, _ = self.held_tally(key, batch)
        batch.held.pop(key, None)
        if tally is not None:
            brand.monitor.open_held(tally)
        return key

    def close_intervals(self, brand_id: str, brand: BrandState,
                        batch: Batch) -> tuple[Events, list[str]]:
        """Close what the watermark allows; returns the events and the held keys used up."""
        events: Events = []
        used: list[str] = []
        until = brand.clock.watermark.value()
        if until is None:
            return events, used
        for interval in brand.clock.advance(until):
            if interval.held:
                used.append(self.add_held(brand_id, brand, interval.start, batch))
            events += brand.monitor.close_interval(interval.start, interval.end)
        start = brand.clock.open_start
        if start is not None and brand.clock.take_open_held():
            used.append(self.add_held(brand_id, brand, start, batch))
            events += brand.monitor.judge_open(start, until)
        return events, used

    # -- output ----------------------------------------------------------------------------

    async def commit(self, event: faust.EventT, brand_id: str, brand: BrandState,
                     events: Events, batch: Batch) -> None:
        """Mark the record counted and send its incident events now (early firing keeps
        its latency); the state is written at the batch's end (`write_batch`)."""
        brand.last_offset = event.message.offset
        batch.changed[brand_id] = event
        await self.emit(brand_id, events)

    async def emit(self, brand_id: str, events: Events) -> None:
        for event in events:
            metrics.INCIDENT_EVENTS.labels(brand=brand_id, event=event["event"],
                                           severity=event["severity"]).inc()
            await self.incidents_out.send(brand_id.encode(), orjson.dumps(event))

    @staticmethod
    def export_gauges(brand_id: str, brand: BrandState, events: Events) -> None:
        trend = brand.monitor.trend
        if trend:
            last = trend[-1]
            metrics.BRAND_OBSERVED.labels(brand=brand_id, measure="mentions").set(last["mentions"])
            metrics.BRAND_OBSERVED.labels(brand=brand_id, measure="negative").set(last["negative"])
        for event in events:
            for measure in ("mentions", "negative", "reach_negative"):
                metrics.BRAND_EXPECTED.labels(brand=brand_id, measure=measure).set(
                    event["expected"][measure])
            for severity, open_now in open_by_severity(event["event"],
                                                       event["severity"]).items():
                metrics.INCIDENTS_OPEN.labels(brand=brand_id, severity=severity).set(open_now)

    async def dead(self, event: faust.EventT, reason: str, message: str) -> None:
        record = event.message
        await self.dead_out.send(dead_letter_key(event.key), dead_letter(
            STAGE, [FieldError("$", message)], key=event.key, original=event.value,
            topic=record.topic, partition=record.partition, offset=record.offset,
            reason=reason, dlq=MENTIONS_DLQ))


def sent_at(event: faust.EventT) -> float:
    """When the score stage sent this mention (the record's timestamp, epoch seconds)."""
    return event.message.timestamp or time.time()


def register(context: AgentContext) -> None:
    """Declare the detect agent: its tables (in `DetectStage` and here) and its stream."""
    recounts = SeenTable.declare(
        context.app, "mentions-counted-hashes",
        "64-bit hashes of the (brand, post) pairs counted, per partition and bucket",
        context.kafka.partitions, RECOUNT_HORIZON.total_seconds(),
        context.worker.dedup_max_keys)
    stage = DetectStage(context, DetectionSettings.from_env(), recounts)

    @context.app.agent(context.topics.mentions_scored, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            await stage.handle_batch(events, make_current)
