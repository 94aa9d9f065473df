"""Creating Vigie's topics up front, with the configured partitions and replication.

A Faust consumer that subscribes before its topic exists ignores it until its next
metadata refresh, so every worker makes sure the topics exist before starting, and waits
until the broker's metadata lists them with a leader for every partition: just after a
broker restart, a topic created a moment ago can be missing from that metadata for a few
seconds, and a group formed then is assigned nothing of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pipeline.settings import KafkaSettings

log = logging.getLogger(__name__)


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
        _wait_until_listed(admin, [kafka.topic(name) for name in names])
        return created
    finally:
        admin.close()


def _wait_until_listed(admin: KafkaAdminClient, topics: list[str], timeout_s: float = 30.0) -> None:
    """Until every topic's metadata has all its partitions led (or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        missing = [
            description["name"]
            for description in admin.describe_topics(topics)
            if description["error_code"] != 0
            or not description["partitions"]
            or any(p["leader_id"] < 0 for p in description["partitions"])
        ]
        if not missing:
            return
        if time.monotonic() > deadline:
            log.warning("topics not yet in the broker's metadata after %.0fs: %s",
                        timeout_s, ", ".join(missing))
            return
        time.sleep(0.2)
