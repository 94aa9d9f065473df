"""Broker outages on a broker of the test's own (free ports, own state folder): producers
ride through them without losing or duplicating a post, and say so once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.generator import BrandProfile, Generator
from pipeline.kafka_local import LocalKafka
from pipeline.producer import PostProducer
from pipeline.records import post_key
from pipeline.settings import KafkaSettings
from pipeline.topics import ensure_topics
from tests.integration.conftest import ROOT, free_port, vigie_command, watchlist_of

#: kafka-python's default delivery timeout, the one Vigie used to fail posts after.
OLD_DELIVERY_TIMEOUT_S = 120


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    broker = LocalKafka(free_port(), free_port(), tmp_path / "kafka", heap="256m")
    broker.start(wait_s=120)
    try:
        yield broker
    finally:
        broker.stop()


def own_env(broker: LocalKafka, tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIGIE_")}
    env.update(VIGIE_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, VIGIE_TOPIC_PREFIX="o.",
               VIGIE_STATE_DIR=str(tmp_path / "state"), PYTHONUNBUFFERED="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def wait_for_records(broker: LocalKafka, topic: str, count: int, timeout_s: float = 60) -> None:
    """Until `topic` holds `count` records: the producer is up and delivering (a slow
    start on a busy machine must not meet the outage before it has even connected)."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic) or set()
            ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            if sum(ends.values()) >= count:
                return
            time.sleep(0.2)
        raise AssertionError(f"{topic} did not reach {count} records in {timeout_s} s")
    finally:
        consumer.close()


def keys_on(broker: LocalKafka, topic: str) -> list[str]:
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=None,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    try:
        return [record.key.decode() for record in consumer]
    finally:
        consumer.close()


def test_ingest_rides_through_an_outage_longer_than_the_delivery_timeout(own_broker, tmp_path):
    settings = KafkaSettings(bootstrap_servers=own_broker.bootstrap, topic_prefix="o.",
                             partitions=4)
    ensure_topics(settings, ["posts.raw"])
    brands = [BrandProfile("acme", ("ACME",), ("#acme",), ("@acme",), base_per_minute=60.0)]
    posts = list(Generator(brands, datetime(2026, 3, 2, 11, tzinfo=UTC), seed=5).posts(60))
    assert len(posts) > 2500
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in posts))
    env = {**own_env(own_broker, tmp_path),
           # The smallest memory bound: the outage also fills it, so sending must pause.
           "VIGIE_PRODUCER_BUFFER_BYTES": "1048576"}
    ingest = subprocess.Popen(
        [*vigie_command(), "ingest", "file", str(path), "--rate", "150", "--quiet"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_records(own_broker, settings.topic("posts.raw"), 300)  # then it goes away
        assert ingest.poll() is None
        own_broker.stop()
        time.sleep(OLD_DELIVERY_TIMEOUT_S + 15)
        assert ingest.poll() is None, "ingest must wait for Kafka, not give up"
        own_broker.start(wait_s=120)
        out, err = ingest.communicate(timeout=240)
    finally:
        if ingest.poll() is None:
            ingest.kill()
    assert ingest.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["sent"] == summary["delivered"] == len(posts)
    assert summary["failed"] == 0 and summary["not_acknowledged"] == 0

    keys = keys_on(own_broker, settings.topic("posts.raw"))
    assert sorted(keys) == sorted(post_key(p) for p in posts), "every post exactly once"

    # What it waited for, once, and the end, once; not a line per reconnect attempt.
    lines = err.strip().splitlines()
    assert sum("does not answer" in line for line in lines) == 1, err[-3000:]
    assert sum("answers again" in line for line in lines) == 1, err[-3000:]
    assert sum("sending paused" in line for line in lines) >= 1, err[-3000:]
    assert len(lines) <= 10, err[-3000:]
    assert "Traceback" not in err


def test_a_second_ctrl_c_gives_up_waiting_for_kafka_and_says_what_was_not_delivered(
        own_broker, tmp_path):
    settings = KafkaSettings(bootstrap_servers=own_broker.bootstrap, topic_prefix="o.",
                             partitions=4)
    ensure_topics(settings, ["posts.raw"])
    brands = [BrandProfile("acme", ("ACME",), ("#acme",), ("@acme",), base_per_minute=60.0)]
    posts = list(Generator(brands, datetime(2026, 3, 2, 11, tzinfo=UTC), seed=6).posts(30))
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in posts))
    ingest = subprocess.Popen(
        [*vigie_command(), "ingest", "file", str(path), "--rate", "100", "--quiet"],
        env=own_env(own_broker, tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_records(own_broker, settings.topic("posts.raw"), 100)
        own_broker.stop()
        time.sleep(3)
        ingest.send_signal(signal.SIGINT)
        time.sleep(2)
        assert ingest.poll() is None, f"the first Ctrl-C waits for Kafka: {ingest.communicate()}"
        ingest.send_signal(signal.SIGINT)
        out, err = ingest.communicate(timeout=60)
    finally:
        if ingest.poll() is None:
            ingest.kill()
    assert ingest.returncode == 1, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["interrupted"] is True and 0 < summary["delivered"] < summary["sent"]
    assert summary["failed"] + summary["not_acknowledged"] == summary["sent"] - summary["delivered"]
    assert f"{summary['sent'] - summary['delivered']} of {summary['sent']} posts were not" in err
    assert "Traceback" not in err, err[-3000:]


def metric(text: str, name: str, client: str) -> float:
    prefix = f'{name}{{client="{client}"}} '
    values = [line[len(prefix):] for line in text.splitlines() if line.startswith(prefix)]
    assert values, f"{name} for {client} missing from /metrics"
    return float(values[0])


def lines_between(log: str, start: datetime, end: datetime) -> list[str]:
    """The worker's log lines from the first one stamped at or after `start` to the last
    one stamped at or before `end` (continuation lines of a traceback included)."""
    lines = log.splitlines()
    stamps = []
    for index, line in enumerate(lines):
        found = re.search(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+\]", line)
        if found:
            stamps.append((index, datetime.fromisoformat(found.group(1))))
    inside = [index for index, stamp in stamps if start <= stamp <= end]
    return lines[inside[0]:inside[-1] + 1] if inside else []


def test_worker_logs_an_outage_once_and_measures_it(own_broker, tmp_path, start_worker):
    settings = KafkaSettings(bootstrap_servers=own_broker.bootstrap, topic_prefix="o.",
                             partitions=4)
    brands = [BrandProfile("acme", ("ACME",), ("#acme",), ("@acme",), base_per_minute=30.0)]
    env = {**own_env(own_broker, tmp_path), "VIGIE_TOPIC_PARTITIONS": "4", "VIGIE_APP_ID": "o",
           "VIGIE_AGENTS": "validate", "VIGIE_WEB_PORT": str(free_port()),
           # The posts below are about ACME: watched, so validate passes them on.
           "VIGIE_WATCHLIST": watchlist_of(tmp_path / "watchlist.yaml", brands)}
    worker = start_worker(env, wait_s=180)
    assert metric(worker.metrics_text(), "vigie_kafka_connected", "worker") == 1

    stopped_at = datetime.now().replace(microsecond=0)  # the worker logs local time
    own_broker.stop()
    time.sleep(30)
    text = worker.metrics_text()
    assert metric(text, "vigie_kafka_connected", "worker") == 0
    # The client's attempts go on: counted instead of logged.
    assert metric(text, "vigie_kafka_client_log_lines_held_total", "worker") > 30
    back_at = datetime.now()
    own_broker.start(wait_s=120)
    deadline = time.monotonic() + 60
    while metric(worker.metrics_text(), "vigie_kafka_connected", "worker") != 1:
        assert time.monotonic() < deadline, worker.log()[-3000:]
        time.sleep(1)
    text = worker.metrics_text()
    assert metric(text, "vigie_kafka_outages_total", "worker") == 1
    assert metric(text, "vigie_kafka_outage_seconds_total", "worker") >= 25

    # And it works again: posts sent after the outage are validated.
    posts = list(Generator(brands, datetime(2026, 3, 2, 11, tzinfo=UTC), seed=9).posts(5))
    with PostProducer(settings, source="test") as producer:
        for post in posts:
            producer.send(post)
    deadline = time.monotonic() + 90
    while len(set(keys_on(own_broker, settings.topic("posts.valid")))) < len(posts):
        assert time.monotonic() < deadline, worker.log()[-3000:]
    assert sorted(set(keys_on(own_broker, settings.topic("posts.valid")))) == sorted(
        post_key(p) for p in posts)

    worker.stop()  # its log is complete once it exited
    during = [line for line in lines_between(worker.log(), stopped_at, back_at)
              if "[WARNING]" in line or "[ERROR]" in line]
    # The old worker wrote about 100 such lines/s here (8,000/s with every agent under
    # load); the broker's own shutdown still earns a few coordinator warnings.
    assert 0 < len(during) <= 25, "\n".join(during[:40])
    assert sum("does not answer" in line for line in during) == 1, "\n".join(during[:40])
    assert sum("answers again" in line for line in worker.log().splitlines()) == 1
