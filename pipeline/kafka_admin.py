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
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.limits import MAX_MESSAGE_BYTES, topic_size_config
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
            configs = topic_size_config()
            if name in compacted:
                configs["cleanup.policy"] = "compact"
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
        _warn_of_small_limits(admin, [kafka.topic(name) for name in names])
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


def _warn_of_small_limits(admin: KafkaAdminClient, topics: list[str]) -> None:
    """Say which topics (created before, or by someone else) take smaller records than
    Vigie writes: records over their limit will be dead-lettered as `too_large`."""
    wanted = {"max.message.bytes": None}
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=wanted) for topic in topics],
            config_filter="all",
        )
    except KafkaError as exc:  # e.g. no DescribeConfigs permission: not worth stopping for
        log.info("topic limits not checked: %s", exc)
        return
    for topic, configs in sorted(described.get("topic", {}).items()):
        value = (configs.get("max.message.bytes") or {}).get("value")
        if value is not None and int(value) < MAX_MESSAGE_BYTES:
            log.warning(
                "topic %s takes records up to %s bytes, less than the %d Vigie may write: "
                "larger ones will be dead-lettered as too_large (kafka-configs --alter "
                "--entity-type topics --entity-name %s --add-config max.message.bytes=%d)",
                topic, value, MAX_MESSAGE_BYTES, topic, MAX_MESSAGE_BYTES,
            )
