"""The detect stage keeps a brand's state in parts (agents/brand_store.py): each closed
interval of its evidence window written once, the settled part when it changes, the open
interval with every batch. What a restart restores is what was counted, and a part a
crash left unnamed is deleted.

Runs `agents.detect.DetectStage` on a generated stream with its Faust tables replaced by
dicts that record every changelog write (a Faust table writes one record per assignment
or deletion, which is all the stage relies on)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.brand_store import monitor_state, settled_key, window_key
from agents.detect import RECOUNT_HORIZON, DetectStage
from agents.seen_table import SeenTable
from models.detection import SourceProgress
from pipeline.detect_settings import DetectionSettings
from pipeline.generator import BrandProfile, Generator, Scenario
from pipeline.mentions import mention_record, tick_record
from pipeline.settings import KafkaSettings
from pipeline.topics import INCIDENTS, MENTIONS_DLQ, MENTIONS_SCORED
from pipeline.watchlist_watch import WatchlistWatcher

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
LUMIO = BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#LumioLeaks",),
                     ("@lumio_energie",), base_per_minute=3.0)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    timestamp: float


@dataclass
class Event:
    key: bytes
    value: bytes
    message: Message


class Table(dict):
    """A Faust table as the stage uses it; `writes` lists (key, value) as the changelog
    would receive them (None: a deletion)."""

    def __init__(self, writes: list[tuple[Any, Any]]) -> None:
        super().__init__()
        self.writes = writes
        # (key, the value handed over, its JSON then): Faust serialises a table value
        # only when its producer buffer sends it, after the stage has gone on.
        self.sent: list[tuple[Any, Any, str]] = []

    def __setitem__(self, key: Any, value: Any) -> None:
        # Through JSON, as the changelog stores it: no object is shared with the stage.
        written = json.dumps(value)
        super().__setitem__(key, json.loads(written))
        self.writes.append((key, value))
        self.sent.append((key, value, written))

    def pop(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            return default
        self.writes.append((key, None))
        return super().pop(key)

    @property
    def data(self) -> dict:
        return self


@dataclass
class App:
    tables: dict[str, Table] = field(default_factory=dict)

    def Table(self, name: str, **_kwargs: Any) -> Table:  # noqa: N802 (Faust's name)
        return self.tables.setdefault(name, Table([]))


class Topic:
    def __init__(self, name: str) -> None:
        self.name, self.sent = name, []

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, key: bytes | None, value: bytes) -> None:
        self.sent.append(value)


@dataclass
class Topics:
    incidents: Topic = field(default_factory=lambda: Topic(INCIDENTS))
    mentions_dlq: Topic = field(default_factory=lambda: Topic(MENTIONS_DLQ))


@dataclass
class Context:
    app: App
    kafka: KafkaSettings
    topics: Topics
    watchlist: WatchlistWatcher


def stream(minutes: float) -> list[Event]:
    """Lumio's mentions, a wave after two hours, and a clock tick every 20 posts."""
    wave = Scenario("wikirevelation", "lumio", 120, 30, 150)
    generator = Generator([LUMIO], START, seed=7, scenarios=[wave])
    progress, now = SourceProgress(), datetime.now(UTC)
    records: list[dict[str, Any]] = []
    for read, post in enumerate(generator.posts(minutes)):
        if "lumio" in post["text"].lower():
            records.append(mention_record(post, "lumio", ["lumio"], "negative",
                                          {"negative": 1.0}, "test", None))
        progress.observe(0, read, datetime.fromisoformat(post["created_at"]), now)
        if (read + 1) % 20 == 0:
            records.append(tick_record(progress.report(1, {0: read + 1}, now), now))
    return [Event(b"lumio", json.dumps(record).encode(),
                  Message(MENTIONS_SCORED, 0, offset, time.time()))
            for offset, record in enumerate(records)]


def stage_on(app: App) -> tuple[DetectStage, Topics]:
    topics = Topics()
    context = Context(app, KafkaSettings(partitions=1), topics,
                      WatchlistWatcher(ROOT / "config" / "watchlist.yaml"))
    recounts = SeenTable(app.Table("mentions-counted-hashes"),
                         RECOUNT_HORIZON.total_seconds(), 1_000_000)
    return DetectStage(context, DetectionSettings.from_env(),  # type: ignore[arg-type]
                       recounts), topics


def feed(stage: DetectStage, events: list[Event], batch: int = 40) -> None:
    async def go() -> None:
        for at in range(0, len(events), batch):
            await stage.handle_batch(events[at:at + batch], lambda _event: None)  # type: ignore[arg-type]
    asyncio.run(go())


def window_records(table: Table) -> set[str]:
    prefix = window_key("lumio", "")
    return {key[len(prefix):] for key in table if key.startswith(prefix)}


def restarted(app: App) -> App:
    """A new worker's tables: what the changelogs hold."""
    copy = App()
    for name, table in app.tables.items():
        copy.Table(name).update(json.loads(json.dumps(table)))
    return copy


def test_each_part_is_written_when_it_changes_and_the_brand_value_names_them() -> None:
    events = stream(160)
    app = App()
    stage, topics = stage_on(app)
    feed(stage, events)
    assert topics.incidents.sent  # the wave was seen
    states = app.tables["brand-detectors"]
    state, intervals, saved = monitor_state(states, "lumio")
    named = state["window_starts"]
    assert len(named) >= 5 and "window" not in state
    assert window_records(states) == set(named) == intervals.keys()  # none missing or left
    settled = [key for key in states if "|settled|" in key]
    assert settled == [settled_key("lumio", saved.version)]
    writes = Counter("brand" if key == "lumio" else key.split("|")[1]
                     for key, value in states.writes if value is not None)
    interval_writes = [key for key, value in states.writes
                       if "|window|" in key and value is not None]
    assert len(interval_writes) == len(set(interval_writes))  # each interval once
    assert writes["settled"] < writes["brand"]  # only when it changed
    # What is written with every batch is a small part of the whole state.
    brand_bytes = [len(json.dumps(value)) for key, value in states.writes if key == "lumio"]
    whole = len(json.dumps(stage.live["lumio"].monitor.to_state()))
    assert sum(brand_bytes) / len(brand_bytes) < whole / 4


def test_a_written_value_does_not_change_as_the_brand_goes_on() -> None:
    """What the changelog receives is the state of the batch that wrote it, even when it
    is serialised later: no value handed to the table shares what the monitor changes."""
    app = App()
    stage, _ = stage_on(app)
    feed(stage, stream(160))
    table = app.tables["brand-detectors"]
    changed = [key for key, value, written in table.sent if json.dumps(value) != written]
    assert not changed, f"{len(changed)} of {len(table.sent)} values changed after the write"


def rounded(value: Any) -> Any:
    """A state with its floats to 12 significant digits: the tail calibrator renormalises
    its counts whenever its state is taken (models/detection/calibration.py), so a state
    taken at other moments differs in the last bits of those, and nothing else."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item) for item in value]
    return value


def everything(stage: DetectStage) -> dict[str, Any]:
    brand = stage.live["lumio"]
    return {"monitor": brand.monitor.to_state(), "clock": brand.clock.to_state(),
            "last_offset": brand.last_offset}


def cut_at(events: list[Event], minute: int) -> int:
    """The offset of the first mention posted `minute` minutes or more after START."""
    for at, event in enumerate(events):
        record = json.loads(event.value)
        if "created_at" in record and datetime.fromisoformat(
                record["created_at"]) >= START + timedelta(minutes=minute):
            return at
    raise AssertionError(f"no mention after minute {minute}")


def test_a_restart_resumes_from_the_window_records_and_drops_an_unnamed_one() -> None:
    events = stream(160)
    whole, whole_topics = stage_on(App())
    feed(whole, events)
    assert len(whole_topics.incidents.sent) >= 2

    for minute in (125, 133):  # before the incident opens; while it is open
        cut = cut_at(events, minute)
        first_app = App()
        first, first_topics = stage_on(first_app)
        feed(first, events[:cut])
        # A crash after an interval was written and before the state naming it was: the
        # table holds an interval the state does not name.
        app = restarted(first_app)
        orphan = "2026-03-09T13:00:00+00:00"
        table = app.tables["brand-detectors"]
        assert orphan not in monitor_state(table, "lumio")[0]["window_starts"]
        table[window_key("lumio", orphan)] = {"start": orphan}
        # and the previous version of the settled part, whose deletion it prevented
        version = monitor_state(table, "lumio")[2].version
        assert version > 1
        previous = settled_key("lumio", version - 1)
        table[previous] = {"state_version": 2}
        second, second_topics = stage_on(app)
        feed(second, events[cut:])

        assert first_topics.incidents.sent + second_topics.incidents.sent == \
            whole_topics.incidents.sent, f"restart at minute {minute}"
        assert rounded(everything(second)) == rounded(everything(whole))
        states = app.tables["brand-detectors"]
        assert orphan not in window_records(states) and previous not in states
        assert window_records(states) == set(monitor_state(states, "lumio")[0]["window_starts"])
        if minute == 133:
            assert first_topics.incidents.sent and second_topics.incidents.sent
