"""The `detect` agent: mentions.scored (key = brand) -> per-brand detector -> incidents.

Each brand's detector state lives in a Faust table keyed by brand id, so it is restored
from its changelog after a restart or a rebalance. Intervals follow event time (the
posts' created_at): a mention later than the open interval closes the intervals before
it, empty ones included (an interval without posts is a zero). So that a quiet brand's
intervals close on time too, each worker regularly puts a clock tick for every watched
brand on mentions.scored, keyed by brand, which lands in the brand's own partition.

A restart re-reads the mentions after the last committed offset; the state remembers the
offset of the last record it counted, so nothing is counted twice, and incident events
carry (incident_id, sequence), so that a re-sent event is recognised downstream. A score
worker that stops before committing scores its last posts again, and their mentions come
at new offsets: a windowed table of the (brand, post) pairs counted in the last hour or
two keeps them from being counted twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
import orjson

from agents.app import AgentContext
from agents.outlet import Outlet
from models.detection import BrandMonitor, DetectorConfig
from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key
from pipeline.detect_settings import DetectionSettings
from pipeline.schema import FieldError, parse_timestamp
from pipeline.watchlist import Watchlist

log = logging.getLogger(__name__)
STAGE = "detect"
# After a long silence (a stopped pipeline, a replay of old data) the detector jumps
# instead of closing every missed interval one by one.
MAX_INTERVALS_PER_STEP = 1440
# How long a counted (brand, post) pair is remembered: re-scored mentions come within
# seconds or minutes of the originals, and any later than the allowed lateness is
# dead-lettered as too late anyway. (Kept for one to two hours: tumbling windows.)
RECOUNT_HORIZON = timedelta(hours=1)


def tick_record(clock: datetime) -> bytes:
    return orjson.dumps({"schema_version": 1, "tick": clock.isoformat()})


def interval_start(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


class BrandClock:
    """One brand's monitor plus where its open interval starts; the table value."""

    def __init__(self, monitor: BrandMonitor, open_start: datetime | None, last_offset: int):
        self.monitor = monitor
        self.open_start = open_start
        self.last_offset = last_offset

    def to_state(self) -> dict[str, Any]:
        return {"monitor": self.monitor.to_state(),
                "open_start": self.open_start.isoformat() if self.open_start else None,
                "last_offset": self.last_offset}

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig) -> BrandClock:
        open_start = state.get("open_start")
        return cls(BrandMonitor.from_state(state["monitor"], config),
                   datetime.fromisoformat(open_start) if open_start else None,
                   int(state.get("last_offset", -1)))

    def advance(self, until: datetime, seconds: int) -> list[dict[str, Any]]:
        """Close every interval that ends at or before `until`; returns incident events."""
        events: list[dict[str, Any]] = []
        if self.open_start is None:
            self.open_start = interval_start(until, seconds)
            return events
        step = timedelta(seconds=seconds)
        due = int((until - self.open_start) / step)
        if due > MAX_INTERVALS_PER_STEP:
            # Close the open interval, then skip the silence in one go.
            events += self.monitor.close_interval(self.open_start, self.open_start + step)
            self.open_start = interval_start(until, seconds) - step * (MAX_INTERVALS_PER_STEP - 1)
            due = MAX_INTERVALS_PER_STEP - 1
        for _ in range(max(0, due)):
            end = self.open_start + step
            events += self.monitor.close_interval(self.open_start, end)
            self.open_start = end
        return events


def register(context: AgentContext) -> None:
    app, topics = context.app, context.topics
    settings = DetectionSettings.from_env()
    base_config = settings.to_config()
    configs: dict[str, DetectorConfig] = {}
    live: dict[str, BrandClock] = {}

    def use_watchlist(watchlist: Watchlist) -> None:
        """Per-brand settings from this watchlist version: a new brand is counted from its
        next mention, a removed one is dead-lettered as unknown, and a brand whose
        thresholds changed is rebuilt from its table state with the new ones."""
        fresh = {brand_id: base_config.with_overrides(brand.thresholds)
                 for brand_id, brand in watchlist.brands.items()}
        for brand_id in [b for b in live if fresh.get(b) != configs.get(b)]:
            del live[brand_id]
        configs.clear()
        configs.update(fresh)

    use_watchlist(context.watchlist.watchlist)
    context.watchlist.on_change(use_watchlist)
    lateness = timedelta(seconds=settings.allowed_lateness_seconds)
    states = app.Table("brand-detectors", default=None, partitions=context.kafka.partitions,
                       help="per-brand detector state")
    counted = app.Table(
        "mentions-counted", default=int, partitions=context.kafka.partitions,
        help="(brand, post) pairs counted by the detector recently",
    ).tumbling(RECOUNT_HORIZON, expires=RECOUNT_HORIZON * 2)
    newest_event = [datetime.min.replace(tzinfo=UTC)]  # for the event clock
    wall_clock = settings.clock == "wall"

    incidents_out = Outlet(topics.incidents, topics.mentions_dlq, "mentions.dlq", STAGE)
    dead_out = Outlet(topics.mentions_dlq, topics.mentions_dlq, "mentions.dlq", STAGE)

    def clock_for(brand_id: str, state: dict[str, Any] | None) -> BrandClock:
        """The brand's clock: the live object while the table agrees with it, else rebuilt
        from the table (after a restart, or when the partition comes back from another
        worker), which saves parsing the whole state on every mention."""
        cached = live.get(brand_id)
        if cached is not None and state is not None \
                and state.get("last_offset") == cached.last_offset:
            return cached
        config = configs[brand_id]
        if state is None:
            brand = context.watchlist.watchlist.brands[brand_id]
            clock = BrandClock(BrandMonitor(brand_id, brand.name, config), None, -1)
        else:
            clock = BrandClock.from_state(state, config)
        live[brand_id] = clock
        return clock

    async def emit(brand_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            metrics.INCIDENT_EVENTS.labels(brand=brand_id, event=event["event"],
                                           severity=event["severity"]).inc()
            await incidents_out.send(brand_id.encode(), orjson.dumps(event))

    def export_gauges(brand_id: str, clock: BrandClock, events: list[dict[str, Any]]) -> None:
        trend = clock.monitor.trend
        if trend:
            last = trend[-1]
            metrics.BRAND_OBSERVED.labels(brand=brand_id, measure="mentions").set(last["mentions"])
            metrics.BRAND_OBSERVED.labels(brand=brand_id, measure="negative").set(last["negative"])
        for event in events:
            for measure in ("mentions", "negative", "reach_negative"):
                metrics.BRAND_EXPECTED.labels(brand=brand_id, measure=measure).set(
                    event["expected"][measure])
            for severity in ("info", "warning", "critical"):
                open_now = event["event"] != "resolved" and event["severity"] == severity
                metrics.INCIDENTS_OPEN.labels(brand=brand_id, severity=severity).set(
                    1 if open_now else 0)

    async def dead(event: faust.EventT, reason: str, message: str) -> None:
        record = event.message
        await dead_out.send(dead_letter_key(event.key), dead_letter(
            STAGE, [FieldError("$", message)], key=event.key, original=event.value,
            topic=record.topic, partition=record.partition, offset=record.offset,
            reason=reason, dlq="mentions.dlq"))

    @app.agent(topics.mentions_scored, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        seconds = base_config.interval_seconds
        async for event in stream.events():
            brand_id = (event.key or b"").decode("utf-8", "replace")
            offset = event.message.offset
            if brand_id not in configs:
                await dead(event, "unknown_brand", f"brand {brand_id!r} is not in the watchlist")
                continue
            try:
                record = orjson.loads(event.value)
                tick = record.get("tick")
                moment = parse_timestamp(tick or record.get("created_at"))
            except (orjson.JSONDecodeError, AttributeError, ValueError, OverflowError) as exc:
                await dead(event, "invalid_mention", str(exc))
                continue
            clock = clock_for(brand_id, states.get(brand_id))
            if offset <= clock.last_offset:
                continue  # counted before a restart
            post_key = None if tick else record.get("post_key")
            pair = f"{brand_id}|{post_key}" if post_key else None
            if pair is not None:
                window = counted[pair]
                if window.current() or window.delta(RECOUNT_HORIZON):
                    metrics.MENTIONS_RECOUNTED.labels(brand=brand_id).inc()
                    continue  # the same post, scored again after a score worker restart
            clock.last_offset = offset
            events: list[dict[str, Any]] = []
            if tick:
                events = clock.advance(moment, seconds)
            else:
                newest_event[0] = max(newest_event[0], moment)
                if clock.open_start is None or moment >= clock.open_start:
                    # On the wall clock a post from a fast source clock must not close
                    # intervals that have not happened yet.
                    until = min(moment, datetime.now(UTC)) if wall_clock else moment
                    events = clock.advance(until, seconds)
                elif clock.open_start - moment > lateness:
                    await dead(event, "too_late", f"created_at {moment.isoformat()} is more "
                               f"than {lateness} before the open interval")
                    states[brand_id] = clock.to_state()
                    continue
                # A mention late by less than the allowed lateness counts in the open one.
                try:
                    clock.monitor.add_mention(record)
                except ValueError as exc:
                    await dead(event, "invalid_mention", str(exc))
            await emit(brand_id, events)
            states[brand_id] = clock.to_state()
            if pair is not None:
                counted[pair] = 1  # after the state: a crash between them re-counts nothing
            if events or tick:
                export_gauges(brand_id, clock, events)

    @app.timer(interval=settings.tick_seconds)
    async def send_ticks() -> None:
        if wall_clock:
            now = datetime.now(UTC) - timedelta(seconds=settings.tick_seconds)
        elif newest_event[0].year > 1:
            now = newest_event[0] - lateness
        else:
            return
        value = tick_record(now)
        for brand_id in list(configs):  # a reload may change it between sends
            await topics.mentions_scored.send(key=brand_id.encode(), value=value)

