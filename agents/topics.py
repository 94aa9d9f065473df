"""The Faust topic objects of the worker's streams (raw bytes in and out).

Names and settings are declared once in pipeline/topics.py; the alert stage's own topics
(alerts.*) are written by its Kafka writer, not through Faust, so they have no object here.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from pipeline.settings import KafkaSettings
from pipeline.topics import (
    INCIDENTS,
    MENTIONS_DLQ,
    MENTIONS_SCORED,
    POSTS_DLQ,
    POSTS_RAW,
    POSTS_VALID,
    spec,
)


@dataclass(frozen=True)
class Topics:
    posts_raw: faust.TopicT
    posts_valid: faust.TopicT
    posts_dlq: faust.TopicT
    mentions_scored: faust.TopicT
    mentions_dlq: faust.TopicT
    incidents: faust.TopicT


def declare_topics(app: faust.App, kafka: KafkaSettings) -> Topics:
    def topic(name: str) -> faust.TopicT:
        declared = spec(name)
        # Values stay bytes: each stage decodes and validates them itself, so that a bad
        # record becomes a dead letter instead of a crashed codec.
        return app.topic(
            kafka.topic(name),
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=declared.partitions(kafka), replicas=kafka.replication_factor,
            compacting=declared.compacted, config=declared.configs(),
        )

    return Topics(
        posts_raw=topic(POSTS_RAW),
        posts_valid=topic(POSTS_VALID),
        posts_dlq=topic(POSTS_DLQ),
        mentions_scored=topic(MENTIONS_SCORED),
        mentions_dlq=topic(MENTIONS_DLQ),
        incidents=topic(INCIDENTS),
    )
