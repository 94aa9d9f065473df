"""Integration tests delete the topics they created, and only those, from the shared broker.

A developer runs `make test` many times against one long-lived broker: topics left behind
add up until the broker runs out of open files. Other engineers' tests run on the same
broker meanwhile, so a cleanup must never touch a topic of another prefix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer

from pipeline.settings import KafkaSettings
from pipeline.topic_cleanup import app_id_for, delete_owned_topics, owned_by
from pipeline.topics import ALL_TOPICS, POSTS_RAW, ensure_topics
from tests.integration.conftest import ROOT, consume

pytestmark = pytest.mark.integration


def listed(kafka: KafkaSettings) -> set[str]:
    admin = KafkaAdminClient(**kafka.kafka_python_config())
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def create_faust_changelog(kafka: KafkaSettings, name: str) -> None:
    """A topic as a worker's Faust table makes it: created by the broker on first write."""
    producer = KafkaProducer(**kafka.kafka_python_config())
    try:
        producer.send(name, key=b"k", value=b"v").get(timeout=30)
    finally:
        producer.close()


def test_cleanup_deletes_this_test_s_topics_and_leaves_another_prefix_s(
    kafka_settings: KafkaSettings,
) -> None:
    ours = kafka_settings
    app_id = app_id_for(ours.topic_prefix)
    derived = KafkaSettings(bootstrap_servers=ours.bootstrap_servers,
                            topic_prefix=f"{ours.topic_prefix}ref.", partitions=4)
    # Another test running meanwhile, and one whose prefix merely begins like our app id.
    neighbours = [
        KafkaSettings(bootstrap_servers=ours.bootstrap_servers,
                      topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=4),
        KafkaSettings(bootstrap_servers=ours.bootstrap_servers,
                      topic_prefix=f"{app_id}x.", partitions=4),
    ]
    try:
        ensure_topics(ours)
        ensure_topics(derived, [POSTS_RAW])
        create_faust_changelog(ours, f"{app_id}-brand-detectors-changelog")
        for neighbour in neighbours:
            ensure_topics(neighbour, [POSTS_RAW])
            with KafkaProducer(**neighbour.kafka_python_config()) as producer:
                producer.send(neighbour.topic(POSTS_RAW), key=b"kept", value=b"{}").get(30)
        expected = {ours.topic(name) for name in ALL_TOPICS} | {
            derived.topic(POSTS_RAW), f"{app_id}-brand-detectors-changelog"}
        assert expected <= listed(ours)

        deleted = delete_owned_topics(ours)

        assert set(deleted) == expected
        remaining = listed(ours)
        assert [topic for topic in remaining if owned_by(topic, ours.topic_prefix)] == []
        for neighbour in neighbours:
            assert neighbour.topic(POSTS_RAW) in remaining
            records = consume(neighbour, POSTS_RAW, expected=1, timeout_s=30, idle_s=0.5)
            assert [record.key for record in records] == [b"kept"]
    finally:
        for neighbour in neighbours:
            delete_owned_topics(neighbour)


def test_cleanup_refuses_an_empty_prefix_that_would_match_every_topic(
    kafka_settings: KafkaSettings,
) -> None:
    everyone = KafkaSettings(bootstrap_servers=kafka_settings.bootstrap_servers, topic_prefix="")
    with pytest.raises(ValueError, match="refusing"):
        delete_owned_topics(everyone)
    assert "__consumer_offsets" in listed(kafka_settings)


FAILING_TEST = '''
import os
from pathlib import Path

from pipeline.topics import ensure_topics


def test_that_fails(kafka_settings):
    ensure_topics(kafka_settings)
    Path(os.environ["PREFIX_FILE"]).write_text(kafka_settings.topic_prefix)
    assert False, "a failed test cleans up as well"
'''


def test_a_failed_test_s_topics_are_gone_after_its_teardown(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    """The kafka_settings fixture itself, in a pytest run of its own with a failing test."""
    (tmp_path / "test_inner.py").write_text(FAILING_TEST)
    prefix_file = tmp_path / "prefix"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFIX_FILE": str(prefix_file)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "tests.integration.conftest", "--rootdir", str(tmp_path), "test_inner.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout + run.stderr
    prefix = prefix_file.read_text()
    assert prefix.startswith("t") and prefix.endswith(".")
    assert [topic for topic in listed(kafka_settings) if topic.startswith(prefix)] == []
