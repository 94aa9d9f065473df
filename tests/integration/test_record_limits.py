"""Records the pipeline cannot use, of any size and any date, become dead letters; the
worker goes on (issue 13: one large post stopped the whole pipeline)."""

from __future__ import annotations

import orjson
import pytest
from kafka import KafkaProducer

from pipeline.mentions import mention_record
from tests.integration.conftest import consume

pytestmark = pytest.mark.integration


def a_mention(post_id: str, created_at: str, brand: str = "orange") -> bytes:
    post = {"platform": "forum", "id": post_id, "url": None, "created_at": created_at,
            "author": {"handle": "marie", "followers": 10}, "text": "Orange en panne encore",
            "language": "fr", "engagement": {}}
    return orjson.dumps(mention_record(post, brand, ["orange"], "negative",
                                       {"negative": 0.9, "neutral": 0.05, "positive": 0.05},
                                       "test-model"))


def test_a_mention_dated_year_0_in_utc_is_dead_lettered_not_a_crash(
        kafka_settings, worker_env, start_worker):
    # Valid ISO 8601 with a valid offset, but year 0 once converted to UTC: the detect agent
    # crashed on it ("year 0 is out of range"), Faust restarted it, and the mention was
    # neither counted nor dead-lettered.
    worker = start_worker({**worker_env, "VIGIE_AGENTS": "detect"})
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    topic = kafka_settings.topic("mentions.scored")
    producer.send(topic, key=b"orange", value=a_mention("y0", "0001-01-01T00:00:00+14:00"))
    producer.send(topic, key=b"orange", value=a_mention("ok", "2026-03-02T11:00:00+00:00"))
    producer.flush()
    producer.close()

    dead = consume(kafka_settings, "mentions.dlq", expected=1, timeout_s=60)

    letters = [orjson.loads(record.value) for record in dead]
    assert [letter["reason"] for letter in letters] == ["invalid_mention"]
    assert "out of range once converted to UTC" in letters[0]["errors"][0]["message"]
    assert worker.process.poll() is None
    assert "year 0 is out of range" not in worker.log()
