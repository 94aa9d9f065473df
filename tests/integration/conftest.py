"""Fixtures for tests against the real local Kafka broker (started by `make test`).

Every test gets its own topic prefix and consumer group, so tests never see each other's
records even on one broker, and a worker subprocess started with `start_worker` runs the
real `vigie worker` command with the test's settings. When the test ends, its topics are
deleted from the broker (pipeline/topic_cleanup.py), after its workers stopped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer

from pipeline.kafka_local import LocalKafka
from pipeline.settings import KafkaSettings
from pipeline.topic_cleanup import app_id_for, delete_owned_topics_quietly
from pipeline.worker_ready import WorkerNotReady, is_ready, wait_until_ready

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def vigie_command() -> list[str]:
    """The installed `vigie` script of this interpreter's environment."""
    script = Path(sys.executable).parent / "vigie"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


@pytest.fixture(scope="session")
def kafka_broker() -> str:
    """The local broker's bootstrap address; starts it if `make test` did not."""
    broker = LocalKafka.from_env()
    broker.start(wait_s=120)
    return broker.bootstrap


@pytest.fixture
def kafka_settings(kafka_broker: str) -> Iterator[KafkaSettings]:
    """The test's own topic prefix on the shared broker; its topics (and its workers' Faust
    topics) are deleted when the test ends, passed or failed, so that a developer's broker
    does not run out of files after many runs. (A test on a LocalKafka of its own leaves
    that broker's topics to its state folder.)"""
    prefix = f"t{uuid.uuid4().hex[:10]}."
    settings = KafkaSettings(bootstrap_servers=kafka_broker, topic_prefix=prefix, partitions=4)
    yield settings
    delete_owned_topics_quietly(settings)


@pytest.fixture
def worker_env(kafka_settings: KafkaSettings, tmp_path: Path) -> dict[str, str]:
    """Environment for a `vigie worker` (or any vigie command) bound to this test's topics."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIGIE_")}
    env.update(
        VIGIE_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        VIGIE_TOPIC_PREFIX=kafka_settings.topic_prefix,
        VIGIE_TOPIC_PARTITIONS=str(kafka_settings.partitions),
        VIGIE_APP_ID=app_id_for(kafka_settings.topic_prefix),
        VIGIE_STATE_DIR=str(tmp_path / "worker-state"),
        VIGIE_WEB_PORT=str(free_port()),
        VIGIE_WATCHLIST=str(ROOT / "config" / "watchlist.yaml"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    web_port: int
    log_path: Path
    stopped: bool = field(default=False)

    def ready(self) -> bool:
        return is_ready(self.web_port)

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.web_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 60.0) -> int:
        """Graceful stop (SIGTERM): Faust flushes and commits before exiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stopped = True
        return self.process.returncode

    def kill(self) -> None:
        """A crash: SIGKILL, no chance to flush or commit."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stopped = True


@pytest.fixture
def start_worker(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., WorkerProcess]]:
    # The workers must be stopped before kafka_settings deletes the test's topics: a worker
    # still running would recreate them (the broker creates topics on first use). Asking
    # for kafka_settings here orders the teardowns so; a test on a broker of its own, which
    # does not use kafka_settings, is not tied to the shared broker by it.
    if "kafka_settings" in request.fixturenames:
        request.getfixturevalue("kafka_settings")
    workers: list[WorkerProcess] = []

    def start(env: dict[str, str], wait_s: float = 90.0) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(workers)}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [*vigie_command(), "worker"], env=env, cwd=ROOT,
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        worker = WorkerProcess(process, int(env["VIGIE_WEB_PORT"]), log_path)
        workers.append(worker)
        try:
            wait_until_ready(worker.web_port, process, wait_s)
        except WorkerNotReady as exc:
            raise AssertionError(f"{exc}:\n{worker.log()[-5000:]}") from None
        return worker

    yield start
    for worker in workers:
        if not worker.stopped:
            worker.stop()


def consume(
    settings: KafkaSettings, topic: str, expected: int | None = None, timeout_s: float = 60.0,
    idle_s: float = 3.0,
) -> list[Any]:
    """Every record of `topic` (logical name) from the beginning.

    Reads until `expected` records have arrived and then `idle_s` more seconds pass with
    nothing new (so that extra, duplicate records would be seen), or until `timeout_s`.
    """
    consumer = KafkaConsumer(
        settings.topic(topic), bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
        consumer_timeout_ms=500,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500)
            fresh = [record for part in batch.values() for record in part]
            if fresh:
                records.extend(fresh)
                last_new = time.monotonic()
            enough = expected is None or len(records) >= expected
            if enough and time.monotonic() - last_new >= idle_s:
                break
    finally:
        consumer.close()
    return records


def watchlist_of(path: Path, brands: list[Any]) -> str:
    """A watchlist file watching `brands` (generator `BrandProfile`s: names, hashtags,
    handles) and nothing else; its path as str.

    The validate stage passes on only posts that mention a watched brand: a test whose
    generated posts are about brands of its own watches them with this."""
    lines = ["version: 1", "receivers: {}", "brands:"]
    for brand in brands:
        lines += [f"  - id: {brand.id}", f"    name: {json.dumps(brand.names[0])}",
                  f"    aliases: {json.dumps(list(brand.names[1:]))}",
                  f"    hashtags: {json.dumps(list(brand.hashtags))}",
                  f"    handles: {json.dumps(list(brand.handles))}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)
