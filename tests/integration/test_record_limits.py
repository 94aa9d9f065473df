"""Records the pipeline cannot use, of any size and any date, become dead letters; the
worker goes on (issue 13: one large post stopped the whole pipeline)."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from pipeline.deadletter import original_bytes
from pipeline.mentions import mention_record
from pipeline.producer import PostProducer
from pipeline.records import post_key
from tests.integration.conftest import ROOT, consume, vigie_command

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


def normal_posts(prefix: str, count: int) -> list[dict]:
    return [{"schema_version": 1, "platform": "forum", "id": f"{prefix}{n}",
             "author": {"handle": "marie", "followers": 10}, "language": "fr",
             "text": f"Orange encore en panne ce matin ({prefix}{n})",
             "created_at": "2026-03-02T11:00:00+00:00"} for n in range(count)]


def big_post(post_id: str, size: int, compressible: bool = True) -> bytes:
    post = normal_posts(post_id, 1)[0]
    filler = "x" * size if compressible else base64.b64encode(os.urandom(size))[:size].decode()
    value = orjson.dumps({**post, "id": post_id, "text": "Orange " + filler})
    assert len(value) >= size
    return value


def test_large_posts_are_dead_lettered_with_a_bounded_copy_and_the_worker_goes_on(
        kafka_settings, worker_env, start_worker):
    # An 800 KB post (accepted by Vigie's own producer) and a 1.9 MB one (compressed by
    # another producer, so the broker takes it): their dead letters with the original in
    # base64 exceeded Faust's producer limit, which stopped the worker and lost the post.
    worker = start_worker({**worker_env, "VIGIE_AGENTS": "validate"})
    before, between, after = (normal_posts(p, 20) for p in ("a", "b", "c"))
    medium, huge = big_post("big800k", 800_000), big_post("big19m", 1_900_000)
    with PostProducer(kafka_settings, source="test") as producer:
        for post in before:
            producer.send(post)
        producer.send_raw("forum:big800k", medium)
        for post in between:
            producer.send(post)
    assert producer.failed == 0
    other = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers,
                          compression_type="lz4", max_request_size=4_000_000)
    other.send(kafka_settings.topic("posts.raw"), key=b"forum:big19m", value=huge).get(30)
    other.close()
    with PostProducer(kafka_settings, source="test") as producer:
        for post in after:
            producer.send(post)

    normal = before + between + after
    valid = consume(kafka_settings, "posts.valid", expected=len(normal), timeout_s=90)
    dead = consume(kafka_settings, "posts.dlq", expected=2, timeout_s=30, idle_s=1)

    assert sorted(r.key.decode() for r in valid) == sorted(post_key(p) for p in normal)
    letters = {r.key.decode(): orjson.loads(r.value) for r in dead}
    assert set(letters) == {"forum:big800k", "forum:big19m"}
    assert all(len(r.value) < 100_000 for r in dead), "bounded dead letters"
    for key, original in (("forum:big800k", medium), ("forum:big19m", huge)):
        letter = letters[key]
        assert letter["reason"] == "oversized" and letter["stage"] == "validate"
        assert letter["original_size"] == len(original)
        assert letter["original_sha256"] == hashlib.sha256(original).hexdigest()
        assert letter["original_truncated"] is True
        kept = original_bytes(letter)
        assert 0 < len(kept) < len(original) and original.startswith(kept)
    assert worker.process.poll() is None, worker.log()[-3000:]
    assert "MessageSizeTooLarge" not in worker.log()


def test_a_record_a_topic_refuses_for_its_size_is_dead_lettered(
        kafka_settings, worker_env, start_worker):
    # posts.valid created elsewhere with a small max.message.bytes: a valid post larger
    # than that was refused by the broker, logged as a warning, and lost.
    admin = KafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    admin.create_topics([NewTopic(kafka_settings.topic("posts.valid"), 4, 1,
                                  topic_configs={"max.message.bytes": "50000"})])
    admin.close()
    worker = start_worker({**worker_env, "VIGIE_AGENTS": "validate",
                           "VIGIE_MAX_RECORD_BYTES": "300000"})
    large = big_post("large", 120_000, compressible=False)  # the broker checks compressed size
    with PostProducer(kafka_settings, source="test") as producer:
        producer.send_raw("forum:large", large)
    dead = consume(kafka_settings, "posts.dlq", expected=1, timeout_s=60, idle_s=1)
    posts = normal_posts("n", 10)
    with PostProducer(kafka_settings, source="test") as producer:
        for post in posts:
            producer.send(post)

    valid = consume(kafka_settings, "posts.valid", expected=len(posts), timeout_s=60)

    [letter] = [orjson.loads(r.value) for r in dead]
    assert letter["reason"] == "too_large" and letter["stage"] == "validate"
    assert letter["topic"] == kafka_settings.topic("posts.valid")
    assert letter["original_truncated"] is True
    assert original_bytes(letter).startswith(b'{"schema_version":1,"platform":"forum"')
    assert letter["original_size"] > 120_000
    assert sorted(r.key.decode() for r in valid) == sorted(post_key(p) for p in posts)
    assert worker.process.poll() is None
    assert "vigie_records_too_large_total" in worker.metrics_text()


def test_ingest_file_skips_a_line_too_large_for_kafka_and_sends_the_rest(
        kafka_settings, worker_env, tmp_path):
    posts = normal_posts("f", 10)
    lines = [orjson.dumps(p) for p in posts]
    huge = big_post("toolarge", 2_500_000)  # over the 2 MB that stopped the replay
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b"\n".join(lines[:4] + [huge] + lines[4:]) + b"\n")

    result = subprocess.run([*vigie_command(), "ingest", "file", str(path), "--quiet"],
                            env=worker_env, cwd=ROOT, capture_output=True, text=True,
                            timeout=120)

    assert result.returncode == 1, result.stderr
    summary = orjson.loads(result.stdout.strip().splitlines()[-1])
    assert summary["sent"] == summary["delivered"] == len(posts) and summary["failed"] == 0
    assert summary["too_large"] == 1 and summary["too_large_records"][0].startswith("line 5 ")
    assert "line 5" in result.stderr and "Traceback" not in result.stderr
    raw = consume(kafka_settings, "posts.raw", expected=len(posts), timeout_s=30, idle_s=1)
    assert sorted(r.key.decode() for r in raw) == sorted(post_key(p) for p in posts)
