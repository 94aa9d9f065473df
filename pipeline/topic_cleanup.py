"""Deleting the topics a run created (an integration test, a bench), so that a long-lived
development broker does not fill up.

Every test and bench run gets its own topic prefix (`t1234abcd56.`) and creates a dozen
topics of several partitions under it, plus Faust's internal topics named from the
worker's app id (changelogs `<app_id>-<table>-changelog`, `<app_id>-__assignor-__leader`,
repartition topics), which is the prefix without its dot. Each partition is a folder of
open files on the broker: kept after every run of `make test`, they added up to about
20,000 on a developer's broker, which then died of "Too many open files". A shared broker
runs other people's tests at the same time, so only names that begin with the run's own
unique prefix or app id are ever deleted.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaAdminClient
from kafka.errors import KafkaError, UnknownTopicOrPartitionError, for_code

from pipeline.settings import KafkaSettings

__all__ = ["app_id_for", "delete_owned_topics", "delete_owned_topics_quietly", "owned_by"]

log = logging.getLogger(__name__)


def app_id_for(topic_prefix: str) -> str:
    """The Faust app id (VIGIE_APP_ID) of a run's workers: its topic prefix without the dot,
    so that the changelog topics Faust names from it belong to the run as well."""
    return topic_prefix.rstrip(".")


def _owned_beginnings(topic_prefix: str) -> tuple[str, str]:
    app_id = app_id_for(topic_prefix)
    if not app_id:
        # An empty prefix would own every topic on the broker, other tests' included.
        raise ValueError(f"topic prefix {topic_prefix!r} names no run: refusing to clean up")
    # Prefixes a test derives from its own (`t1234.ref.`, app id `t1234.ref`) begin with it.
    return topic_prefix, f"{app_id}-"


def owned_by(topic: str, topic_prefix: str) -> bool:
    """Whether `topic` is one of the topics of the run whose prefix is `topic_prefix`."""
    return topic.startswith(_owned_beginnings(topic_prefix))


def delete_owned_topics(kafka: KafkaSettings, timeout_s: float = 30.0) -> list[str]:
    """Delete every topic of the run whose settings are `kafka` from the broker they point
    at, wait until its metadata lists none of them (at most `timeout_s`), and return the
    names deleted. Raises KafkaError or OSError when the broker will not do it."""
    _owned_beginnings(kafka.topic_prefix)  # refuse an empty prefix before connecting
    admin = KafkaAdminClient(
        **kafka.kafka_python_config(), client_id="vigie-topic-cleanup",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        topics = sorted(t for t in admin.list_topics() if owned_by(t, kafka.topic_prefix))
        if not topics:
            return []
        response = admin.delete_topics(topics, timeout_ms=int(timeout_s * 1000),
                                       raise_errors=False)
        failures = {
            result["name"]: for_code(result["error_code"]).__name__
            for result in response["topics"]
            # Already gone (deleted by a test of its own, or a race) is what we want.
            if result["error_code"] not in (0, UnknownTopicOrPartitionError.errno)
        }
        if failures:
            raise KafkaError(f"the broker did not delete {failures}")
        _wait_until_unlisted(admin, set(topics), timeout_s)
        return topics
    finally:
        admin.close()


def _wait_until_unlisted(admin: KafkaAdminClient, topics: set[str], timeout_s: float) -> None:
    """The controller has deleted them when delete_topics answers; the broker's metadata
    follows a moment later."""
    deadline = time.monotonic() + timeout_s
    while remaining := topics & set(admin.list_topics()):
        if time.monotonic() > deadline:
            raise KafkaError(f"still listed {timeout_s:.0f}s after deletion: {sorted(remaining)}")
        time.sleep(0.2)


def delete_owned_topics_quietly(kafka: KafkaSettings) -> None:
    """`delete_owned_topics` for a teardown (a test's fixture, a bench's end): a failure is
    a warning in the log, never a failed test or bench (the topics are only left behind)."""
    try:
        deleted = delete_owned_topics(kafka, timeout_s=20.0)
    except Exception as exc:  # whatever happens, the run's result stands
        log.warning("topics of prefix %r left on %s: %s: %s", kafka.topic_prefix,
                    kafka.bootstrap_servers, type(exc).__name__, exc)
    else:
        log.info("deleted %d topics of prefix %r", len(deleted), kafka.topic_prefix)
