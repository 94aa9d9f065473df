"""The worker's Kubernetes probes over real HTTP: /live says why it is alive (or not)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from datetime import UTC, datetime

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from pipeline.producer import PostProducer

pytestmark = pytest.mark.integration


def test_live_answers_alive_on_a_running_worker(worker_env, start_worker):
    worker = start_worker({**worker_env, "VIGIE_AGENTS": "alert"})
    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/live", timeout=5) as answer:
        assert (answer.status, answer.read()) == (200, b"alive")


def live(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/live", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_live_fails_when_the_validate_loop_cannot_move_on(kafka_settings, worker_env,
                                                          start_worker):
    # posts.valid created elsewhere so that the broker refuses every write to it (a record
    # may not be dated before the broker's clock, which every record is by the time it
    # arrives): the validate loop cannot commit, records wait on posts.raw, and /live must
    # say so, though the Faust consumer is fine.
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    admin.create_topics([NewTopic(kafka_settings.topic("posts.valid"), 4, 1,
                                  topic_configs={"message.timestamp.before.max.ms": "0"})])
    admin.close()
    worker = start_worker({**worker_env, "VIGIE_AGENTS": "validate",
                           "VIGIE_LIVE_CONSUMER_STALL_S": "20"})
    assert live(worker.web_port) == (200, "alive")
    post = {"schema_version": 1, "platform": "forum", "id": "stuck-1",
            "author": {"handle": "a"}, "text": "Orange est encore en panne",
            "created_at": datetime.now(UTC).isoformat()}
    with PostProducer(kafka_settings, source="test") as producer:
        producer.send(post)

    deadline = time.monotonic() + 90
    status, reason = live(worker.web_port)
    while status == 200 and time.monotonic() < deadline:
        time.sleep(2)
        status, reason = live(worker.web_port)
    assert status == 503, worker.log()[-3000:]
    assert "posts.raw" in reason and "consumer stuck" in reason
