"""Topic creation against the real broker: every declared topic, with its settings."""

from __future__ import annotations

import dataclasses

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from pipeline.settings import KafkaSettings
from pipeline.topics import ALERTS_LEDGER, ALERTS_SILENCES, ALL_TOPICS, POSTS_RAW, ensure_topics


def test_every_topic_is_created_with_its_declared_partitions_and_policy(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = dataclasses.replace(kafka_settings, partitions=3)
    created = ensure_topics(kafka)
    assert sorted(created) == sorted(kafka.topic(name) for name in ALL_TOPICS)
    assert ensure_topics(kafka) == []  # a second worker finds them all

    admin = KafkaAdminClient(**kafka.kafka_python_config())
    try:
        partitions = {
            d["name"]: len(d["partitions"])
            for d in admin.describe_topics([kafka.topic(name) for name in ALL_TOPICS])
        }
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, kafka.topic(name),
                            configs={"cleanup.policy": None})
             for name in (ALERTS_SILENCES, POSTS_RAW)],
            config_filter="all",
        )["topic"]
    finally:
        admin.close()
    # Silences and the ledger: one partition, whoever creates them first (the worker did
    # so with the configured count before).
    assert partitions[kafka.topic(ALERTS_SILENCES)] == 1
    assert partitions[kafka.topic(ALERTS_LEDGER)] == 1
    assert partitions[kafka.topic(POSTS_RAW)] == 3
    assert described[kafka.topic(ALERTS_SILENCES)]["cleanup.policy"]["value"] == "compact"
    assert described[kafka.topic(POSTS_RAW)]["cleanup.policy"]["value"] == "delete"
