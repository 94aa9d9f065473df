"""Replays of history on the real broker, 4 partitions, the real worker and `vigie ingest file`.

A user backfills history before going live. Partitions are read at different speeds, so
mentions reach the detector out of order; intervals must still close only once every
partition has passed them (models/detection/clock.py). Replayed as fast as it goes or
paced with `--speed`, the same file must lose no mention as too late and give the same
incidents; a post dated a day ahead must blind nobody.
"""

from __future__ import annotations

import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.generator import BrandProfile, Generator, Scenario
from pipeline.settings import KafkaSettings
from pipeline.topic_cleanup import app_id_for
from pipeline.topics import ensure_topics
from tests.integration.conftest import ROOT, consume, vigie_command

pytestmark = pytest.mark.integration

WARMUP, CRISIS, AFTER = 300, 25, 40
START = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
BRANDS = [
    BrandProfile("orange", ("Orange",), ("#OrangeFrance",), ("@orange",), base_per_minute=4.0),
    BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#LumioLeaks",), ("@lumio_energie",),
                 base_per_minute=1.5),
]
LEAK_START = START + timedelta(minutes=WARMUP)


def history(folder: Path, seed: int = 12, extra: list[dict] | None = None) -> Path:
    leak = Scenario("wikirevelation", "lumio", WARMUP, CRISIS, 200)
    posts = list(Generator(BRANDS, START, seed=seed, scenarios=[leak])
                 .posts(WARMUP + CRISIS + AFTER))
    for post in extra or []:  # in the file where a source delivered them, not by time
        posts.insert(post.pop("_line"), post)
    path = folder / "history.jsonl"
    path.write_bytes(b"".join(orjson.dumps({**p, "language": p.get("language", "fr")}) + b"\n"
                              for p in posts))
    return path


def settings_for(base: KafkaSettings, name: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=base.bootstrap_servers,
                         topic_prefix=f"{base.topic_prefix}{name}.", partitions=4)


def env_for(worker_env: dict[str, str], kafka: KafkaSettings, tmp_path: Path,
            name: str) -> dict[str, str]:
    return {**worker_env, "VIGIE_TOPIC_PREFIX": kafka.topic_prefix,
            "VIGIE_APP_ID": app_id_for(kafka.topic_prefix), "VIGIE_TOPIC_PARTITIONS": "4",
            "VIGIE_STATE_DIR": str(tmp_path / name), "VIGIE_AGENTS": "validate,score,detect",
            "VIGIE_DETECT_TICK_SECONDS": "1", "VIGIE_DETECT_QUIET_MINUTES": "20",
            # fp32: its labels do not depend on which posts share a batch (dynamic int8's
            # do a little, and the two replays batch differently), so the peaks compare.
            "VIGIE_MODEL_RUNTIME": "onnx",
            # What a replay needed before one clock served both (now ignored, with a
            # warning): without it the old wall clock dead-lettered every replayed mention.
            "VIGIE_DETECT_CLOCK": "event"}


def ingest(env: dict[str, str], path: Path, *options: str) -> None:
    done = subprocess.run([*vigie_command(), "ingest", "file", str(path), "--quiet", *options],
                          env=env, cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def incidents(kafka: KafkaSettings, timeout_s: float) -> dict[str, list[dict]]:
    """Incident events by incident id (a redelivered copy counted once), once some incident
    opened and every one resolved, and nothing more came for a while."""
    deadline = time.monotonic() + timeout_s
    while True:
        by_id: dict[str, dict[int, dict]] = {}
        for record in consume(kafka, "incidents", timeout_s=30, idle_s=10):
            event = orjson.loads(record.value)
            by_id.setdefault(event["incident_id"], {}).setdefault(event["sequence"], event)
        found = {key: [events[n] for n in sorted(events)] for key, events in by_id.items()}
        settled = found and all(events[-1]["event"] == "resolved" for events in found.values())
        if settled or time.monotonic() > deadline:
            return found


def dead_letters(kafka: KafkaSettings) -> list[dict]:
    return [orjson.loads(r.value) for r in consume(kafka, "mentions.dlq", timeout_s=10, idle_s=2)]


def mentions_scored(kafka: KafkaSettings) -> int:
    return sum(1 for r in consume(kafka, "mentions.scored", timeout_s=30, idle_s=3)
               if b'"tick"' not in r.value[:40])


def peak(events: list[dict]) -> int:
    """The incident's peak: its negative posts in the busiest window, which the resolution
    states ("peak was N"). (The events in between are snapshots taken as it grew.)"""
    found = re.search(r"peak was (\d+)", events[-1]["summary"])
    assert events[-1]["event"] == "resolved" and found, events[-1]["summary"]
    return int(found.group(1))


def test_a_full_speed_backfill_loses_nothing_and_matches_a_paced_replay(
        kafka_settings, worker_env, start_worker, tmp_path):
    path = history(tmp_path)

    # As fast as it goes: the whole history is on the topic before the worker starts, so
    # the worker reads four partitions of backlog at whatever pace each comes.
    fast = settings_for(kafka_settings, "fast")
    fast_env = env_for(worker_env, fast, tmp_path, "fast")
    ensure_topics(fast)
    ingest(fast_env, path)
    worker = start_worker(fast_env)
    fast_incidents = incidents(fast, timeout_s=300)
    worker.stop()

    # Paced: the same file at 600x its own pace, the worker running.
    paced = settings_for(kafka_settings, "paced")
    paced_env = env_for(worker_env, paced, tmp_path, "paced")
    worker = start_worker(paced_env)
    ingest(paced_env, path, "--speed", "600")
    paced_incidents = incidents(paced, timeout_s=300)
    worker.stop()

    for kafka in (fast, paced):
        late = [d for d in dead_letters(kafka) if d["reason"] == "too_late"]
        assert late == [], f"{len(late)} of {mentions_scored(kafka)} mentions dead-lettered"

    # The same incidents: the leak, opened in the same minute, with the same peak (give or
    # take a few posts whose int8 sentiment depends on the batch they were scored in).
    assert set(fast_incidents) == set(paced_incidents)
    assert len(fast_incidents) == 1, sorted(fast_incidents)
    for incident_id, events in fast_incidents.items():
        other = paced_incidents[incident_id]
        assert incident_id.startswith("lumio-")
        assert LEAK_START <= datetime.fromisoformat(events[0]["opened_at"]) \
            <= LEAK_START + timedelta(minutes=12)
        assert [e["event"] for e in events].count("opened") == 1
        assert events[-1]["event"] == other[-1]["event"] == "resolved"
        print(f"{incident_id}: peak {peak(events)} at full speed, {peak(other)} paced")
        assert abs(peak(events) - peak(other)) <= max(5, 0.03 * peak(other)), \
            (peak(events), peak(other))


def test_a_post_dated_a_day_ahead_blinds_nobody(kafka_settings, worker_env, start_worker,
                                                 tmp_path):
    """A source with a broken clock dates one post about the brand 23 h ahead (validation
    accepts up to a day); it comes amid the warm-up of a replay, before the leak."""
    future = {"schema_version": 1, "platform": "twitter", "id": "999000001",
              "url": "https://x.com/someone/status/999000001",
              "author": {"handle": "someone", "display_name": "Someone", "followers": 50,
                         "verified": False},
              "text": "Lumio Energie a changé son logo", "language": "fr",
              "created_at": (START + timedelta(minutes=120, hours=23)).isoformat(),
              "_line": 1000}
    path = history(tmp_path, extra=[future])
    kafka = settings_for(kafka_settings, "future")
    env = env_for(worker_env, kafka, tmp_path, "future")
    start_worker(env)
    ingest(env, path, "--speed", "600")
    found = incidents(kafka, timeout_s=300)

    late = [d for d in dead_letters(kafka) if d["reason"] == "too_late"]
    assert late == [], f"{len(late)} of {mentions_scored(kafka)} mentions dead-lettered"
    # The brand still sees its leak, on time.
    assert len(found) == 1 and next(iter(found)).startswith("lumio-")
    events = next(iter(found.values()))
    assert LEAK_START <= datetime.fromisoformat(events[0]["opened_at"]) \
        <= LEAK_START + timedelta(minutes=12)
    assert events[-1]["event"] == "resolved"
