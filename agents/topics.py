"""The Kafka topics of the pipeline, as Faust topic objects (raw bytes in and out)."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from pipeline.limits import topic_size_config
from pipeline.settings import KafkaSettings

# Logical names; the real name is KafkaSettings.topic(name) (an optional prefix).
POSTS_RAW = "posts.raw"
POSTS_VALID = "posts.valid"
POSTS_DLQ = "posts.dlq"
MENTIONS_SCORED = "mentions.scored"
MENTIONS_DLQ = "mentions.dlq"
INCIDENTS = "incidents"
ALERTS_LOG = "alerts.log"
ALERTS_DLQ = "alerts.dlq"
ALERTS_SILENCES = "alerts.silences"


ALL_TOPICS = (POSTS_RAW, POSTS_VALID, POSTS_DLQ, MENTIONS_SCORED, MENTIONS_DLQ, INCIDENTS,
              ALERTS_LOG, ALERTS_DLQ, ALERTS_SILENCES)
COMPACTED_TOPICS = (ALERTS_SILENCES,)


@dataclass(frozen=True)
class Topics:
    posts_raw: faust.TopicT
    posts_valid: faust.TopicT
    posts_dlq: faust.TopicT
    mentions_scored: faust.TopicT
    mentions_dlq: faust.TopicT
    incidents: faust.TopicT
    alerts_log: faust.TopicT
    alerts_dlq: faust.TopicT
    alerts_silences: faust.TopicT


def declare_topics(app: faust.App, kafka: KafkaSettings) -> Topics:
    def topic(name: str, compacting: bool = False) -> faust.TopicT:
        # Values stay bytes: each stage decodes and validates them itself, so that a bad
        # record becomes a dead letter instead of a crashed codec.
        return app.topic(
            kafka.topic(name),
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
            partitions=kafka.partitions, replicas=kafka.replication_factor,
            compacting=compacting, config=topic_size_config(),
        )

    return Topics(
        posts_raw=topic(POSTS_RAW),
        posts_valid=topic(POSTS_VALID),
        posts_dlq=topic(POSTS_DLQ),
        mentions_scored=topic(MENTIONS_SCORED),
        mentions_dlq=topic(MENTIONS_DLQ),
        incidents=topic(INCIDENTS),
        alerts_log=topic(ALERTS_LOG),
        alerts_dlq=topic(ALERTS_DLQ),
        # Latest state per silence id: compaction keeps it forever, small.
        alerts_silences=topic(ALERTS_SILENCES, compacting=True),
    )
