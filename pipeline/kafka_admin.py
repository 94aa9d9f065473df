"""Creating Vigie's topics up front, with the configured partitions and replication.

A Faust consumer that subscribes before its topic exists ignores it until its next
metadata refresh (minutes), so every worker makes sure the topics exist before starting.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.settings import KafkaSettings


def ensure_topics(kafka: KafkaSettings, names: Iterable[str], compacted: Iterable[str] = ()) -> \
        list[str]:
    """Create the missing topics (logical names); returns the real names created."""
    compacted = set(compacted)
    admin = KafkaAdminClient(**kafka.kafka_python_config(), client_id="vigie-admin")
    try:
        existing = set(admin.list_topics())
        wanted = []
        for name in names:
            real = kafka.topic(name)
            if real in existing:
                continue
            configs = {"cleanup.policy": "compact"} if name in compacted else {}
            wanted.append(NewTopic(real, kafka.partitions, kafka.replication_factor,
                                   topic_configs=configs))
        created = []
        for topic in wanted:
            try:
                admin.create_topics([topic])
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass  # another worker created it at the same moment
        return created
    finally:
        admin.close()
