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
from models.detection import BrandClock, BrandMonitor, DetectorConfig
from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key
from pipeline.detect_settings import DetectionSettings
from pipeline.mentions import TICK_SCHEMA_VERSION
from pipeline.schema import FieldError, parse_timestamp
from pipeline.topics import MENTIONS_DLQ
from pipeline.watchlist import Watchlist

log = logging.getLogger(__name__)
STAGE = "detect"
# How long a counted (brand, post) pair is remembered: re-scored mentions come within
# seconds or minutes of the originals, and any later than the allowed lateness is
# dead-lettered as too late anyway. (Kept for one to two hours: tumbling windows.)
RECOUNT_HORIZON = timedelta(hours=1)


class BrandState:
    """One brand's monitor, clock and last counted offset: the table value."""

    def __init__(self, monitor: BrandMonitor, clock: BrandClock, last_offset: int):
        self.monitor = monitor
        self.clock = clock
        self.last_offset = last_offset

    def to_state(self) -> dict[str, Any]:
        return {"monitor": self.monitor.to_state(), "clock": self.clock.to_state(),
                "last_offset": self.last_offset}

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig,
                   lateness: timedelta) -> BrandState:
        # States written before the watermark kept only `open_start` beside the monitor.
        clock_state = state.get("clock") or {"open_start": state.get("open_start")}
        return cls(BrandMonitor.from_state(state["monitor"], config),
                   BrandClock.from_state(clock_state, config.interval_seconds, lateness),
                   int(state.get("last_offset", -1)))


def held_key(brand_id: str, start: datetime) -> str:
    return f"{brand_id}|{int(start.timestamp())}"


def register(context: AgentContext) -> None:
    app, topics = context.app, context.topics
    settings = DetectionSettings.from_env()
    base_config = settings.to_config()
    configs: dict[str, DetectorConfig] = {}
    live: dict[str, BrandState] = {}

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
    held = app.Table("mentions-held", default=None, partitions=context.kafka.partitions,
                     help="tallies of mentions waiting for their interval to open")
    counted = app.Table(
        "mentions-counted", default=int, partitions=context.kafka.partitions,
        help="(brand, post) pairs counted by the detector recently",
    ).tumbling(RECOUNT_HORIZON, expires=RECOUNT_HORIZON * 2)

    incidents_out = Outlet(topics.incidents, topics.mentions_dlq, MENTIONS_DLQ, STAGE)
    dead_out = Outlet(topics.mentions_dlq, topics.mentions_dlq, MENTIONS_DLQ, STAGE)

    def state_for(brand_id: str, state: dict[str, Any] | None) -> BrandState:
        """The brand's state: the live object while the table agrees with it, else rebuilt
        from the table (after a restart, or when the partition comes back from another
        worker), which saves parsing the whole state on every mention."""
        cached = live.get(brand_id)
        if cached is not None and state is not None \
                and state.get("last_offset") == cached.last_offset:
            return cached
        config = configs[brand_id]
        if state is None:
            brand = context.watchlist.watchlist.brands[brand_id]
            current = BrandState(BrandMonitor(brand_id, brand.name, config),
                                 BrandClock(config.interval_seconds, lateness), -1)
        else:
            current = BrandState.from_state(state, config, lateness)
        live[brand_id] = current
        return current

    def add_held(brand_id: str, brand: BrandState, start: datetime) -> str:
        """Add to the open interval what was held for it; returns the table key used."""
        key = held_key(brand_id, start)
        tally = held.get(key)
        if tally is not None:
            brand.monitor.open_held(tally["tally"])
        return key

    def advance(brand_id: str, brand: BrandState) -> tuple[list[dict[str, Any]], list[str]]:
        """Close what the watermark allows; returns the events and the held keys used up."""
        events: list[dict[str, Any]] = []
        used: list[str] = []
        until = brand.clock.watermark.value()
        if until is None:
            return events, used
        for interval in brand.clock.advance(until):
            if interval.held:
                used.append(add_held(brand_id, brand, interval.start))
            events += brand.monitor.close_interval(interval.start, interval.end)
        start = brand.clock.open_start
        if start is not None and brand.clock.take_open_held():
            used.append(add_held(brand_id, brand, start))
            events += brand.monitor.judge_open(start, until)
        return events, used

    async def emit(brand_id: str, events: list[dict[str, Any]]) -> None:
        for event in events:
            metrics.INCIDENT_EVENTS.labels(brand=brand_id, event=event["event"],
                                           severity=event["severity"]).inc()
            await incidents_out.send(brand_id.encode(), orjson.dumps(event))

    def export_gauges(brand_id: str, brand: BrandState, events: list[dict[str, Any]]) -> None:
        trend = brand.monitor.trend
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
            reason=reason, dlq=MENTIONS_DLQ))

    @app.agent(topics.mentions_scored, name="detect")
    async def detect(stream: faust.StreamT) -> None:
        async for event in stream.events():
            brand_id = (event.key or b"").decode("utf-8", "replace")
            offset = event.message.offset
            if brand_id not in configs:
                await dead(event, "unknown_brand", f"brand {brand_id!r} is not in the watchlist")
                continue
            try:
                record = orjson.loads(event.value)
                tick = record.get("tick")
                moment = None if tick else parse_timestamp(record.get("created_at"))
                if moment is not None:
                    moment = moment.astimezone(UTC)
            except (orjson.JSONDecodeError, AttributeError, ValueError, OverflowError) as exc:
                await dead(event, "invalid_mention", str(exc))
                continue
            brand = state_for(brand_id, states.get(brand_id))
            if offset <= brand.last_offset:
                continue  # counted before a restart
            if tick:
                if record.get("schema_version") != TICK_SCHEMA_VERSION:
                    continue  # a tick of an older version carries no progress
                try:
                    brand.clock.watermark.merge(record["progress"])
                except (KeyError, TypeError, ValueError) as exc:
                    await dead(event, "invalid_tick", str(exc))
                    continue
                opened_at = brand.clock.open_start
                events, used = advance(brand_id, brand)
                if brand.clock.open_start == opened_at and not events:
                    # Most ticks close nothing: the state (100 KB and more) is not written
                    # again for them. The merged progress rides with the next write, and a
                    # restart re-reads these ticks (the offset stays where it was).
                    continue
                brand.last_offset = offset
                await emit(brand_id, events)
                states[brand_id] = brand.to_state()
                for key in used:  # after the state: a crash between them loses nothing
                    held.pop(key, None)
                export_gauges(brand_id, brand, events)
                continue

            assert moment is not None
            post_key = record.get("post_key")
            pair = f"{brand_id}|{post_key}" if post_key else None
            if pair is not None:
                window = counted[pair]
                if window.current() or window.delta(RECOUNT_HORIZON):
                    metrics.MENTIONS_RECOUNTED.labels(brand=brand_id).inc()
                    continue  # the same post, scored again after a score worker restart
            placement = brand.clock.place(moment)
            events: list[dict[str, Any]] = []
            if placement.kind == "too_late":
                brand.last_offset = offset
                await dead(event, "too_late", f"created_at {moment.isoformat()} is more than "
                           f"{lateness} before the open interval "
                           f"({brand.clock.open_start.isoformat()})")
                states[brand_id] = brand.to_state()
                continue
            try:
                if placement.kind == "held":
                    assert placement.start is not None
                    key = held_key(brand_id, placement.start)
                    tally = held.get(key)
                    if tally is None or tally["offset"] < offset:  # else counted before a crash
                        held[key] = {"tally": brand.monitor.hold_mention(
                            None if tally is None else tally["tally"], record), "offset": offset}
                    if not brand.clock.hold(placement.start):
                        # Its interval was already held for: the state has not changed, so
                        # it is not written again (the tally's offset guards a re-read).
                        if pair is not None:
                            counted[pair] = 1
                        continue
                else:
                    # A mention late by less than the allowed lateness counts in the open one.
                    brand.monitor.add_mention(record)
                    start = brand.clock.open_start
                    assert start is not None
                    events = brand.monitor.judge_open(start, moment)
            except ValueError as exc:
                await dead(event, "invalid_mention", str(exc))
            brand.last_offset = offset
            await emit(brand_id, events)
            states[brand_id] = brand.to_state()
            if pair is not None:
                counted[pair] = 1  # after the state: a crash between them re-counts nothing
            if events:
                export_gauges(brand_id, brand, events)
