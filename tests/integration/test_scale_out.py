"""Scale-out: two workers sharing 4 partitions give the same incidents as one worker.

The whole chain validate -> score -> detect runs in each worker; Kafka's consumer group
spreads the partitions (and with them each brand's detector state) over the workers.
Two brands have a leak each; their keys fall on different partitions, so with two
workers each brand's state can live on a different process.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.partitioner.default import murmur2

from pipeline.generator import BrandProfile, Generator, Scenario
from pipeline.producer import PostProducer
from pipeline.settings import KafkaSettings
from pipeline.topic_cleanup import app_id_for
from pipeline.watchlist import load_watchlist
from tests.integration.conftest import ROOT, consume, free_port

pytestmark = pytest.mark.integration

WARMUP, CRISIS, AFTER = 240, 25, 40
START = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
BRANDS = [
    BrandProfile("orange", ("Orange",), ("#OrangeFrance",), ("@orange",), base_per_minute=4.0),
    BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#LumioLeaks",), ("@lumio_energie",),
                 base_per_minute=2.0),
]


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), as Faust and kafka-python use it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def scenario_posts() -> list[dict]:
    leaks = [Scenario("wikirevelation", "lumio", WARMUP, CRISIS, 150),
             Scenario("outage", "orange", WARMUP + 5, CRISIS, 150)]
    return list(Generator(BRANDS, START, seed=21, scenarios=leaks)
                .posts(WARMUP + CRISIS + AFTER))


def produce_minute_by_minute(settings: KafkaSettings, posts: list[dict]) -> int:
    """Posts one simulated minute at a time, the next minute only once every mention of
    this one is on mentions.scored; returns the number of mentions.

    As live posts come, at the pace of time, and so that a lost or repeated mention is
    seen in the minute it happens: the count must match the watchlist's exactly."""
    watchlist = load_watchlist(ROOT / "config" / "watchlist.yaml")
    reader = KafkaConsumer(settings.topic("mentions.scored"),
                           bootstrap_servers=settings.bootstrap_servers,
                           auto_offset_reset="earliest", group_id=None)
    expected = seen = 0
    by_minute: dict[str, list[dict]] = {}
    for post in posts:
        by_minute.setdefault(post["created_at"][:16], []).append(post)
    try:
        with PostProducer(settings, source="test") as producer:
            for minute_posts in by_minute.values():
                for post in minute_posts:
                    producer.send({**post, "language": post.get("language", "fr")})
                    expected += len(watchlist.match(post["text"]))
                producer.flush()
                deadline = time.monotonic() + 60
                while seen < expected and time.monotonic() < deadline:
                    for records in reader.poll(timeout_ms=100).values():
                        seen += sum(1 for r in records if b'"tick"' not in r.value)
                assert seen == expected, f"{seen} of {expected} mentions after a minute"
        assert producer.failed == 0
    finally:
        reader.close()
    return expected


def incidents(settings: KafkaSettings) -> list[dict]:
    seen: dict[tuple[str, int], dict] = {}
    for record in consume(settings, "incidents", timeout_s=300, idle_s=15):
        event = orjson.loads(record.value)
        seen.setdefault((event["incident_id"], event["sequence"]), event)
    return sorted(seen.values(), key=lambda e: (e["brand"], e["incident_id"], e["sequence"]))


def run(worker_env: dict, start_worker, settings: KafkaSettings, workers: int,
        state: Path) -> tuple[list[dict], int, int]:
    """Incident events, mentions scored, and consumer group members."""
    env = {**worker_env, "VIGIE_TOPIC_PREFIX": settings.topic_prefix,
           "VIGIE_APP_ID": app_id_for(settings.topic_prefix), "VIGIE_TOPIC_PARTITIONS": "4",
           "VIGIE_AGENTS": "validate,score,detect",
           "VIGIE_DETECT_TICK_SECONDS": "1", "VIGIE_DETECT_QUIET_MINUTES": "20",
           # fp32: a post's label does not depend on which posts share its batch.
           "VIGIE_MODEL_RUNTIME": "onnx"}
    started = [start_worker({**env, "VIGIE_WEB_PORT": str(free_port()),
                             "VIGIE_STATE_DIR": str(state / f"worker-{n}")})
               for n in range(workers)]
    deadline = time.monotonic() + 120
    while not all(worker.ready() for worker in started) and time.monotonic() < deadline:
        time.sleep(0.5)  # the second worker's arrival rebalances the group
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        group = admin.describe_groups([env["VIGIE_APP_ID"]])[env["VIGIE_APP_ID"]]
        members = len(group["members"])
    finally:
        admin.close()
    mentions = produce_minute_by_minute(settings, scenario_posts())
    events = incidents(settings)
    for worker in started:
        assert worker.stop() == 0
    return events, mentions, members


def summary(events: list[dict]) -> list[tuple]:
    """What an on-call responder reads: which brand, when it opened (to the interval),
    its severities as it went, and that it resolved."""
    by_incident: dict[str, list[dict]] = {}
    for event in events:
        by_incident.setdefault(event["incident_id"], []).append(event)
    return sorted((chain[0]["brand"], chain[0]["opened_at"], chain[0]["event"],
                   chain[-1]["event"]) for chain in by_incident.values())


def test_two_workers_on_four_partitions_give_the_same_incidents_as_one(
        kafka_settings, worker_env, start_worker, tmp_path):
    assert partition_of(b"lumio", 4) != partition_of(b"orange", 4)
    one = KafkaSettings(bootstrap_servers=kafka_settings.bootstrap_servers,
                        topic_prefix=kafka_settings.topic_prefix + "one.", partitions=4)
    two = KafkaSettings(bootstrap_servers=kafka_settings.bootstrap_servers,
                        topic_prefix=kafka_settings.topic_prefix + "two.", partitions=4)

    expected, mentions_one, members_one = run(worker_env, start_worker, one, 1,
                                              tmp_path / "one")
    events, mentions_two, members_two = run(worker_env, start_worker, two, 2,
                                            tmp_path / "two")

    assert (members_one, members_two) == (1, 2)
    assert {e["brand"] for e in expected} == {"lumio", "orange"}
    assert mentions_two == mentions_one > 0  # each waited for to the last one
    assert summary(events) == summary(expected)
    # Each chain numbered without gap or repeat, and opened by the scripted waves.
    for chain_events in (events, expected):
        ids = {e["incident_id"] for e in chain_events}
        for incident_id in ids:
            sequence = [e["sequence"] for e in chain_events if e["incident_id"] == incident_id]
            assert sequence == list(range(1, len(sequence) + 1))
    opened = {(e["brand"], e["opened_at"]) for e in events if e["event"] == "opened"}
    assert all(datetime.fromisoformat(at) >= START + timedelta(minutes=WARMUP - 1)
               for _, at in opened)
