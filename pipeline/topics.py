"""Vigie's Kafka topics, declared once with their settings, and the one function that
creates or checks them (the worker, the alert stage and `vigie silence` all call it).

Names here are logical: the real name is `KafkaSettings.topic(name)`, with the optional
prefix `VIGIE_TOPIC_PREFIX`. deploy/docker-compose.yml and docs/deploy.md create the same
topics with the same settings (tests/unit/test_deploy_stack.py holds them to it); the
records on each are described in docs/records.md.

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
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from pipeline.limits import MAX_MESSAGE_BYTES, topic_size_config
from pipeline.settings import KafkaSettings

__all__ = [
    "ALERTS_DLQ",
    "ALERTS_LEDGER",
    "ALERTS_LOG",
    "ALERTS_SILENCES",
    "ALERTS_STATE",
    "ALERT_TOPICS",
    "ALL_TOPICS",
    "INCIDENTS",
    "MENTIONS_DLQ",
    "MENTIONS_SCORED",
    "POSTS_DLQ",
    "POSTS_RAW",
    "POSTS_VALID",
    "TOPICS",
    "TopicSpec",
    "ensure_topics",
    "spec",
]

log = logging.getLogger(__name__)

POSTS_RAW = "posts.raw"
POSTS_VALID = "posts.valid"
POSTS_DLQ = "posts.dlq"
MENTIONS_SCORED = "mentions.scored"
MENTIONS_DLQ = "mentions.dlq"
INCIDENTS = "incidents"
ALERTS_LOG = "alerts.log"
ALERTS_DLQ = "alerts.dlq"
ALERTS_SILENCES = "alerts.silences"
ALERTS_STATE = "alerts.state"
ALERTS_LEDGER = "alerts.ledger"


@dataclass(frozen=True)
class TopicSpec:
    """One topic and the settings Vigie creates it with."""

    name: str
    # Compacted topics hold the latest value per key, kept forever (cleanup.policy=compact):
    # the alert stage's shared state. The others keep the broker's retention.
    compacted: bool = False
    # One partition keeps every record of a small topic in one order; the others take
    # VIGIE_TOPIC_PARTITIONS (co-partitioned: Faust joins streams and tables by partition).
    single_partition: bool = False
    # None: the broker's default (log.retention.hours, 7 days on a stock broker).
    retention_ms: int | None = None

    def partitions(self, kafka: KafkaSettings) -> int:
        return 1 if self.single_partition else kafka.partitions

    def configs(self) -> dict[str, str]:
        """The topic configuration: every record that `limits.fits` must be accepted."""
        configs = topic_size_config()
        if self.compacted:
            configs["cleanup.policy"] = "compact"
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(POSTS_RAW),
    TopicSpec(POSTS_VALID),
    TopicSpec(POSTS_DLQ),
    TopicSpec(MENTIONS_SCORED),
    TopicSpec(MENTIONS_DLQ),
    TopicSpec(INCIDENTS),
    # One record per notification attempt, and notifications that finally failed.
    TopicSpec(ALERTS_LOG),
    TopicSpec(ALERTS_DLQ),
    # The alert stage's state (pipeline/notify/kafka_store.py): every silence, each open
    # incident's alerting state (keyed by incident, so partitioned like incidents), and who
    # is sending which notification. Silences and the ledger are small and read whole by
    # every worker: one partition keeps them in one order.
    TopicSpec(ALERTS_SILENCES, compacted=True, single_partition=True),
    TopicSpec(ALERTS_STATE, compacted=True),
    TopicSpec(ALERTS_LEDGER, compacted=True, single_partition=True),
)
_BY_NAME = {topic.name: topic for topic in TOPICS}
ALL_TOPICS: tuple[str, ...] = tuple(_BY_NAME)
ALERT_TOPICS: tuple[str, ...] = (ALERTS_LOG, ALERTS_DLQ, ALERTS_SILENCES, ALERTS_STATE,
                                 ALERTS_LEDGER)


def spec(name: str) -> TopicSpec:
    """The declaration of a logical topic name (KeyError for a name Vigie does not use)."""
    return _BY_NAME[name]


def ensure_topics(kafka: KafkaSettings, names: Iterable[str] = ALL_TOPICS) -> list[str]:
    """Create the missing topics among `names` (logical) with their declared settings,
    wait until the broker lists them, and warn of existing ones that differ.

    Returns the real names created."""
    specs = [spec(name) for name in names]
    admin = KafkaAdminClient(**kafka.kafka_python_config(), client_id="vigie-admin")
    try:
        existing = set(admin.list_topics())
        created = []
        for topic in specs:
            real = kafka.topic(topic.name)
            if real in existing:
                continue
            new = NewTopic(real, topic.partitions(kafka), kafka.replication_factor,
                           topic_configs=topic.configs())
            try:
                admin.create_topics([new])
                created.append(real)
            except TopicAlreadyExistsError:
                pass  # another worker created it at the same moment
        reals = [kafka.topic(topic.name) for topic in specs]
        _wait_until_listed(admin, reals)
        _check_existing(admin, {kafka.topic(topic.name): topic for topic in specs})
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


def _check_existing(admin: KafkaAdminClient, specs: dict[str, TopicSpec]) -> None:
    """Say which topics (created before, or by someone else) differ from their declaration
    in a way that matters: records over a smaller limit will be dead-lettered as
    `too_large`, and a compacted topic that is not compacted loses the alert stage's
    state at the end of its retention."""
    wanted = {"max.message.bytes": None, "cleanup.policy": None}
    try:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs=wanted) for topic in specs],
            config_filter="all",
        )
    except KafkaError as exc:  # e.g. no DescribeConfigs permission: not worth stopping for
        log.info("topic settings not checked: %s", exc)
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
        policy = (configs.get("cleanup.policy") or {}).get("value")
        if specs[topic].compacted and policy is not None and "compact" not in policy:
            log.warning(
                "topic %s has cleanup.policy=%s, not compact: its state is lost after the "
                "retention time (kafka-configs --alter --entity-type topics --entity-name %s "
                "--add-config cleanup.policy=compact)", topic, policy, topic,
            )
