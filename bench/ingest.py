"""Ingestion throughput: producer -> Kafka -> validate agent -> posts.valid.

Run with the local broker up (`make kafka-start`): `python bench/ingest.py [--posts N]`.
Prints posts/s for each stage as one JSON object:
- produce: kafka-python producer, generated posts, acks=all, lz4, until all acknowledged;
- validate: a `vigie worker` running only the validate agent, from its first output record
  to the last (posts.raw already full, so this is the agent's own pace);
- end_to_end: from the first post produced to the last valid post seen, producer and
  worker running at the same time.
Goal on a 2-core machine: 6,000 posts/s end to end. Figures vary with the machine's load:
compare runs made one after the other.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
from kafka import KafkaConsumer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.generator import BrandProfile, Generator  # noqa: E402
from pipeline.producer import PostProducer  # noqa: E402
from pipeline.records import post_key  # noqa: E402
from pipeline.settings import KafkaSettings  # noqa: E402
from pipeline.topic_cleanup import delete_owned_topics_quietly  # noqa: E402
from pipeline.topics import POSTS_VALID  # noqa: E402
from pipeline.worker_ready import WorkerNotReady, wait_until_ready  # noqa: E402


def make_posts(count: int) -> list[tuple[str, bytes]]:
    brands = [BrandProfile(f"brand{i}", (f"Brand{i}",), base_per_minute=400.0) for i in range(5)]
    generator = Generator(brands, datetime(2026, 3, 3, 12, tzinfo=UTC), seed=1)
    posts = []
    for post in generator.posts(10_000):
        posts.append((post_key(post), orjson.dumps(post)))
        if len(posts) == count:
            return posts
    return posts


def produce(settings: KafkaSettings, posts: list[tuple[str, bytes]]) -> float:
    started = time.perf_counter()
    with PostProducer(settings, source="bench") as producer:
        for key, value in posts:
            producer.send_raw(key, value)
    elapsed = time.perf_counter() - started
    assert producer.failed == 0 and producer.delivered == len(posts), producer.errors
    return elapsed


def wait_for_valid(settings: KafkaSettings, expected: int, timeout_s: float) -> tuple[float, float]:
    """Timestamps (time.time) of the first and last record seen on posts.valid."""
    consumer = KafkaConsumer(settings.topic(POSTS_VALID),
                             bootstrap_servers=settings.bootstrap_servers,
                             auto_offset_reset="earliest", group_id=None)
    seen, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200, max_records=5000).values():
                if records and not first:
                    first = time.time()
                seen += len(records)
                last = time.time() if records else last
    finally:
        consumer.close()
    if seen < expected:
        raise SystemExit(f"only {seen} of {expected} posts reached posts.valid")
    return first, last


def start_worker(prefix: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VIGIE_TOPIC_PREFIX": prefix, "VIGIE_APP_ID": prefix.rstrip("."),
           "VIGIE_STATE_DIR": f"/tmp/vigie-bench-{prefix}", "VIGIE_WEB_PORT": str(port),
           "VIGIE_AGENTS": "validate", "VIGIE_LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "worker"], env=env,
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(port, process, wait_s=120)
    except WorkerNotReady as exc:
        process.kill()
        raise SystemExit(str(exc)) from None
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=60_000)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    args = parser.parse_args()
    posts = make_posts(args.posts)
    results: dict[str, object] = {"posts": len(posts), "cores": os.cpu_count()}

    # 1. Producer alone, then the worker alone on a full topic.
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=prefix)
    produce_s = produce(settings, posts)
    results["produce_posts_per_s"] = round(len(posts) / produce_s)
    worker = start_worker(prefix, 6091)
    try:
        first, last = wait_for_valid(settings, len(posts), timeout_s=600)
        results["validate_posts_per_s"] = round(len(posts) / max(last - first, 1e-6))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        delete_owned_topics_quietly(settings)  # a folder of open files per partition

    # 2. Both at once: first post produced -> last valid post seen.
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    settings = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=prefix)
    worker = start_worker(prefix, 6092)
    try:
        started = time.time()
        produce(settings, posts)
        _, last = wait_for_valid(settings, len(posts), timeout_s=600)
        results["end_to_end_posts_per_s"] = round(len(posts) / (last - started))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        delete_owned_topics_quietly(settings)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
