"""The detect stage's own cost: µs per mention and changelog bytes per mention, the state
written once per mention (batches of one record: what the agent did before it took
batches) against once per batch, on the same generated stream in the same process.

    .venv/bin/python bench/detect_stage.py [--minutes 160] [--batch 300,1000]

The stream: mentions of four watched brands (config/watchlist.yaml) over `--minutes` of
event time, a three-storyline wave on one of them after two hours, every mention with a
384-number sentence vector (as the score stage sends them), and a clock tick for every
brand after every 50 posts read. It goes through `agents.detect.DetectStage` with its
Faust tables replaced by in-memory ones that serialise each changelog record with Faust's
own codec and count its bytes; Faust's producer path (buffer, aiokafka, the socket) is
not in these figures, and costs more per record than the bytes suggest. A batch of
`--batch` records is what `take_events` hands the agent: about 300 at 600 mentions/s with
its 0.5 s window (agents/detect.py, BATCH_WITHIN_S), 1,000 when the worker is behind.

The last line is one JSON object with the figures, the ratios per batch size, and how
the written state splits between its parts (to see what a smaller state could save).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from faust.serializers import codecs

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/pipeline.py would shadow the
# package of that name: put the project root there instead.
sys.path = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from agents.brand_store import monitor_state  # noqa: E402
from agents.detect import RECOUNT_HORIZON, DetectStage  # noqa: E402
from agents.seen_table import SeenTable  # noqa: E402
from models.detection import SourceProgress  # noqa: E402
from models.detection.storylines import unpack_vector  # noqa: E402
from pipeline.detect_settings import DetectionSettings  # noqa: E402
from pipeline.generator import BrandProfile, Generator, Scenario  # noqa: E402
from pipeline.mentions import mention_record, tick_record  # noqa: E402
from pipeline.settings import KafkaSettings  # noqa: E402
from pipeline.topics import INCIDENTS, MENTIONS_DLQ, MENTIONS_SCORED  # noqa: E402
from pipeline.watchlist_watch import WatchlistWatcher  # noqa: E402

START = datetime(2026, 3, 9, 13, 0, tzinfo=UTC)
BRANDS = [
    BrandProfile("orange", ("Orange",), ("#OrangeFrance",), ("@orange",), base_per_minute=4.0),
    BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#LumioLeaks",), ("@lumio_energie",),
                 base_per_minute=1.5),
    BrandProfile("apple", ("Apple",), ("#Apple",), ("@apple",), base_per_minute=3.0),
    BrandProfile("societe-generale", ("Société Générale", "SocGen"), ("#SocieteGenerale",),
                 ("@societegenerale",), base_per_minute=2.0),
]
WAVE_MINUTE = 120
TICK_EVERY = 50
VECTOR_DIM = 384


# -- the stream ---------------------------------------------------------------------------

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


def stream(minutes: float, seed: int = 4) -> list[Event]:
    """Mentions and ticks as mentions.scored holds them (one partition, in order)."""
    wave = Scenario("mixed-wave", "lumio", WAVE_MINUTE, 30, 150)
    generator = Generator(BRANDS, START, seed=seed, scenarios=[wave], record_truth=True)
    rng = np.random.default_rng(seed)
    story_vectors: dict[str, np.ndarray] = {}
    progress, now = SourceProgress(), datetime.now(UTC)
    records: list[tuple[str, dict[str, Any]]] = []
    names = {brand.id: [n.lower() for n in (*brand.names, *brand.hashtags)] for brand in BRANDS}
    for read, post in enumerate(generator.posts(minutes)):
        story, label = generator.truth[f"{post['platform']}:{post['id']}"]
        text = post["text"].lower()
        for brand_id, words in names.items():
            matched = [w for w in words if w in text]
            if not matched:
                continue
            # Posts of one storyline have nearby vectors, as a sentence model gives them.
            centre = story_vectors.setdefault(story, rng.normal(size=VECTOR_DIM))
            vector = centre + 0.5 * rng.normal(size=VECTOR_DIM)
            records.append((brand_id, mention_record(post, brand_id, matched, label,
                                                     {label: 1.0}, "bench", vector)))
        progress.observe(0, read, datetime.fromisoformat(post["created_at"]), now)
        if (read + 1) % TICK_EVERY == 0:
            tick = tick_record(progress.report(1, {0: read + 1}, now), now)
            records += [(brand.id, tick) for brand in BRANDS]
    return [Event(brand_id.encode(), json.dumps(value).encode(),
                  Message(MENTIONS_SCORED, 0, offset, time.time()))
            for offset, (brand_id, value) in enumerate(records)]


# -- Faust's tables, in memory, with their changelog counted -------------------------------

@dataclass
class Changelog:
    records: Counter[str] = field(default_factory=Counter)
    bytes: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # serialising the records (Faust's json codec)

    def write(self, table: str, key: Any, value: Any) -> None:
        started = time.perf_counter()
        size = len(codecs.dumps("json", key)) + (
            0 if value is None else len(codecs.dumps("json", value)))
        self.seconds += time.perf_counter() - started
        self.records[table] += 1
        self.bytes[table] += size


class Table(dict):
    def __init__(self, name: str, changelog: Changelog) -> None:
        super().__init__()
        self.name, self.changelog = name, changelog

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.changelog.write(self.name, key, value)

    def pop(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            return default  # as Faust: no changelog record for a key it does not hold
        self.changelog.write(self.name, key, None)
        return super().pop(key)

    @property
    def data(self) -> dict:  # what Faust's table holds (read by SeenTable on first use)
        return self


class App:
    def __init__(self, changelog: Changelog) -> None:
        self.changelog = changelog

    def Table(self, name: str, **_kwargs: Any) -> Table:  # noqa: N802 (Faust's name)
        return Table(name, self.changelog)


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


# Storylines' sentence vectors are stored as float16 means (models/detection/storylines.py):
# each trip through a table moves their last bits, and batches of one record store the
# held tallies after every mention. Whether a post was counted shows in the exact fields
# (posts, terms, texts); the vectors need only agree to a few float16 steps.
VECTOR_TOLERANCE = 1e-2


def comparable(state: dict[str, Any]) -> tuple[str, list[list[float]]]:
    """A state split for comparison: the text of everything but the sentence vectors, its
    floats to 12 significant digits (the tail calibrator renormalises its counts when its
    state is taken, models/detection/calibration.py, so writing the state less often moves
    their last bits), and the vectors, unpacked."""
    vectors: list[list[float]] = []

    def strip(value: Any) -> Any:
        if isinstance(value, float):
            return float(f"{value:.12g}")
        if isinstance(value, dict):
            if isinstance(value.get("vector"), str):
                vectors.append(unpack_vector(value["vector"]))
            return {key: strip(item) for key, item in value.items() if key != "vector"}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    return json.dumps(strip(state), sort_keys=True), vectors


def same_states(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether two runs' states (brand -> `comparable`) count the same."""
    if one.keys() != other.keys():
        return False
    for brand_id, (text, vectors) in one.items():
        other_text, other_vectors = other[brand_id]
        if text != other_text or [len(v) for v in vectors] != [len(v) for v in other_vectors]:
            return False
        if any(abs(x - y) > VECTOR_TOLERANCE
               for a, b in zip(vectors, other_vectors, strict=True)
               for x, y in zip(a, b, strict=True)):
            return False
    return True


# -- the runs -------------------------------------------------------------------------------

def run(events: list[Event], batch_size: int) -> dict[str, Any]:
    changelog = Changelog()
    topics = Topics()
    context = Context(App(changelog), KafkaSettings(partitions=1), topics,
                      WatchlistWatcher(ROOT / "config" / "watchlist.yaml"))
    recounts = SeenTable(Table("mentions-counted-hashes", changelog),
                         RECOUNT_HORIZON.total_seconds(), 10_000_000)
    stage = DetectStage(context, DetectionSettings.from_env(),  # type: ignore[arg-type]
                        recounts)

    async def go() -> float:
        started = time.perf_counter()
        for at in range(0, len(events), batch_size):
            await stage.handle_batch(events[at:at + batch_size], lambda _event: None)
        return time.perf_counter() - started

    seconds = asyncio.run(go())
    mentions = sum(1 for e in events if b'"tick"' not in e.value)
    return {
        "batch": batch_size, "mentions": mentions, "records": len(events),
        "incident_events": len(topics.incidents.sent),
        "us_per_mention": round(1e6 * seconds / mentions, 1),
        "serialise_us_per_mention": round(1e6 * changelog.seconds / mentions, 1),
        "state_writes_per_mention": round(changelog.records["brand-detectors"] / mentions, 4),
        "changelog_records_per_mention": round(sum(changelog.records.values()) / mentions, 3),
        "changelog_bytes_per_mention": round(sum(changelog.bytes.values()) / mentions),
        "bytes_per_mention_by_table": {
            table: round(size / mentions) for table, size in changelog.bytes.items()},
        "records_per_mention_by_table": {
            table: round(count / mentions, 3) for table, count in changelog.records.items()},
        "state_bytes_per_write": round(changelog.bytes["brand-detectors"]
                                       / max(1, changelog.records["brand-detectors"])),
        "stage": stage, "sent": topics.incidents.sent,
        # Each brand's state as a restart would read it (the table's keys differ: its
        # settled part has had more versions when written more often).
        "states": {brand_id: comparable(monitor_state(stage.states, brand_id)[0])
                   for brand_id in stage.configs if brand_id in stage.states},
    }


def state_parts(stage: DetectStage) -> dict[str, Any]:
    """How the biggest brand state splits between its parts, and what building and
    serialising it costs (the whole state, and the part written with every batch)."""
    brand_id, brand = max(stage.live.items(),
                          key=lambda item: len(json.dumps(item[1].monitor.to_state())))
    started = time.perf_counter()
    for _ in range(20):
        monitor = brand.monitor.to_state()
    build_us = 1e6 * (time.perf_counter() - started) / 20
    started = time.perf_counter()
    for _ in range(20):
        encoded = codecs.dumps("json", monitor)
    dump_us = 1e6 * (time.perf_counter() - started) / 20
    every_batch = codecs.dumps("json", stage.states[brand_id])  # agents/brand_store.py
    parts = {name: len(json.dumps(value)) for name, value in monitor.items()}
    window = monitor["window"]
    parts["window: storylines"] = sum(len(json.dumps(i["storylines"])) for i in window)
    parts["window: top posts"] = sum(len(json.dumps(i["top"])) for i in window)
    vectors = sum(len(s.get("vector", "")) for i in [*window, monitor["current"]]
                  for s in i["storylines"]["storylines"])
    vectors += sum(len(s.get("vector", "")) for s in
                   monitor["wave_storylines"]["storylines"])
    parts["sentence vectors (all storylines)"] = vectors
    return {"brand": brand_id, "bytes": len(encoded), "bytes_every_batch": len(every_batch),
            "to_state_us": round(build_us), "serialise_us": round(dump_us),
            "parts_bytes": dict(sorted(parts.items(), key=lambda item: -item[1]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=160)
    parser.add_argument("--batch", default="300,1000",
                        help="batch sizes to compare with batches of one record")
    args = parser.parse_args()
    random.seed(1)
    events = stream(args.minutes)
    print(f"{len(events)} records ({sum(1 for e in events if b'tick' not in e.value)} "
          "mentions)")
    results = []
    for size in [1, *(int(b) for b in args.batch.split(","))]:
        result = run(events, size)
        stage, sent, states = result.pop("stage"), result.pop("sent"), result.pop("states")
        if size == 1:
            parts = state_parts(stage)
            reference = (sent, states)
        # Batches change when states are written, never what is counted or sent.
        result["same_events_and_states_as_one"] = (
            sent == reference[0] and same_states(states, reference[1]))
        results.append(result)
        print(f"batch {size:5d}: {result['us_per_mention']:7.1f} µs/mention, "
              f"{result['changelog_bytes_per_mention']:8,} changelog bytes/mention, "
              f"{result['state_writes_per_mention']:.3f} brand-detectors records/mention, "
              f"{result['incident_events']} incident events")
    one = results[0]
    for result in results[1:]:
        result["time_ratio_vs_one"] = round(result["us_per_mention"] / one["us_per_mention"], 3)
        result["bytes_ratio_vs_one"] = round(
            result["changelog_bytes_per_mention"] / one["changelog_bytes_per_mention"], 4)
    print(json.dumps({"runs": results, "largest_state": parts}))


if __name__ == "__main__":
    main()
