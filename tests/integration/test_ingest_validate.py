"""Producer -> posts.raw -> validate agent -> posts.valid / posts.dlq on the real broker."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.generator import BrandProfile, Generator, Scenario
from pipeline.producer import PostProducer
from pipeline.records import post_key
from tests.integration.conftest import ROOT, consume, vigie_command, watchlist_of

BRANDS = [BrandProfile("acme", ("ACME",), ("#acme",), ("@acme",), base_per_minute=20.0),
          BrandProfile("lumio", ("Lumio",), (), (), base_per_minute=5.0)]
# Every generated post mentions one of BRANDS; Orange is for the CSV's post. Only posts
# about a watched brand go on to posts.valid.
WATCHED = [*BRANDS, BrandProfile("orange", ("Orange",))]


def generated_posts(minutes: float, seed: int = 3) -> list[dict]:
    start = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    scenario = Scenario("wikirevelation", "lumio", 2, 10, 150)
    return list(Generator(BRANDS, start, seed=seed, scenarios=[scenario]).posts(minutes))


def produce(settings, posts) -> None:
    with PostProducer(settings, source="test") as producer:
        for post in posts:
            producer.send(post)
    assert producer.failed == 0 and producer.delivered == len(posts)


@pytest.fixture
def worker_env(worker_env, tmp_path):
    """Only the validate stage: these tests are about ingestion."""
    return {**worker_env, "VIGIE_AGENTS": "validate",
            "VIGIE_WATCHLIST": watchlist_of(tmp_path / "watchlist.yaml", WATCHED)}


def mentions_by_post(settings, expected: int) -> Counter:
    """(post key, brand) -> how many mentions mentions.scored holds for it."""
    records = consume(settings, "mentions.scored", expected=expected, timeout_s=120)
    values = [orjson.loads(record.value) for record in records]
    return Counter((v["post_key"], v["brand"]) for v in values if "tick" not in v)


def keys_of(records) -> list[str]:
    return [record.key.decode() for record in records]


def test_every_valid_post_arrives_once(kafka_settings, worker_env, start_worker):
    posts = generated_posts(12)
    assert len(posts) > 300
    # The score stage drops the copies (validate passes on every copy it reads).
    start_worker({**worker_env, "VIGIE_AGENTS": "validate,score"})
    produce(kafka_settings, posts)
    # The same posts again, as a source would resend after a reconnect: all duplicates.
    produce(kafka_settings, posts[:100])

    valid = consume(kafka_settings, "posts.valid", expected=len(posts) + 100, timeout_s=90)
    mentions = mentions_by_post(kafka_settings, expected=len(posts))

    assert set(keys_of(valid)) == {post_key(p) for p in posts}
    assert {key for key, _ in mentions} == {post_key(p) for p in posts}
    assert set(mentions.values()) == {1}, "every post counted once, its copies dropped"
    first = orjson.loads(valid[0].value)
    assert first["schema_version"] == 1 and first["language"] in {"fr", "en", "und", "de",
                                                                   "es", "it", "pt", "nl"}
    assert consume(kafka_settings, "posts.dlq", timeout_s=2, idle_s=1) == []


def test_each_kind_of_bad_record_is_dead_lettered_and_the_worker_goes_on(
        kafka_settings, worker_env, start_worker):
    good = generated_posts(1)[0]
    worker_env["VIGIE_MAX_RECORD_BYTES"] = "4096"
    start_worker(worker_env)
    missing_author = {k: v for k, v in good.items() if k != "author"}
    wrong_types = {**good, "id": "x1", "author": {"handle": "a", "followers": -3},
                   "created_at": "2026-03-02T11:00:00"}
    bad = {
        "bad_json": b'{"schema_version": 1, "platform": ',
        "bad_utf8": b'{"text": "caf\xe9"}',
        "not_object": b'["a", "list"]',
        "invalid_fields": orjson.dumps(missing_author),
        "unsupported_version": orjson.dumps({**good, "schema_version": 9}),
        "oversized": orjson.dumps({**good, "id": "big", "text": "x" * 5000}),
    }
    with PostProducer(kafka_settings, source="test") as producer:
        for reason, value in bad.items():
            producer.send_raw(f"test:{reason}", value)
        producer.send_raw("test:wrong_types", orjson.dumps(wrong_types))
        producer.send(good)  # after all of them: the worker must still be going

    dead = consume(kafka_settings, "posts.dlq", expected=len(bad) + 1, timeout_s=60)
    valid = consume(kafka_settings, "posts.valid", expected=1, timeout_s=60)

    assert keys_of(valid) == [post_key(good)]
    letters = {record.key.decode(): json.loads(record.value) for record in dead}
    assert len(letters) == len(bad) + 1
    for reason, value in bad.items():
        letter = letters[f"test:{reason}"]
        assert letter["reason"] == reason
        assert letter["stage"] == "validate"
        assert base64.b64decode(letter["original"]) == value, "original bytes kept"
        assert letter["errors"] and letter["topic"] == kafka_settings.topic("posts.raw")
    wrong = {e["field"] for e in letters["test:wrong_types"]["errors"]}
    assert wrong == {"author.followers", "created_at"}, "every problem named with its field"
    assert {e["field"] for e in letters["test:invalid_fields"]["errors"]} == {"author"}


def test_a_worker_stopped_mid_stream_loses_and_duplicates_nothing(
        kafka_settings, worker_env, start_worker):
    posts = generated_posts(40, seed=11)
    assert len(posts) > 1000
    worker = start_worker(worker_env)
    half = len(posts) // 2
    produce(kafka_settings, posts[:half])
    # Stop while it is still working through the first half.
    time.sleep(1.0)
    assert worker.stop() == 0, worker.log()[-3000:]
    produce(kafka_settings, posts[half:])
    start_worker(worker_env)

    valid = consume(kafka_settings, "posts.valid", expected=len(posts), timeout_s=120)

    keys = keys_of(valid)
    assert len(keys) == len(set(keys)), "no post twice on posts.valid"
    assert set(keys) == {post_key(p) for p in posts}, "no post lost"


def test_a_crashed_worker_loses_nothing(kafka_settings, worker_env, start_worker):
    posts = generated_posts(30, seed=5)
    worker = start_worker(worker_env)
    produce(kafka_settings, posts)
    time.sleep(1.0)
    worker.kill()
    start_worker(worker_env)

    valid = consume(kafka_settings, "posts.valid", expected=len(posts), timeout_s=120)

    assert {record.key.decode() for record in valid} == {post_key(p) for p in posts}


def test_ingest_file_replays_jsonl_and_csv(kafka_settings, worker_env, start_worker,
                                           tmp_path: Path):
    posts = generated_posts(3, seed=21)[:40]
    jsonl = tmp_path / "posts.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in posts) + b"{not json\n")
    csv_path = tmp_path / "posts.csv"
    created = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    csv_path.write_text(
        "platform,id,url,author_handle,author_name,author_followers,text,language,created_at,"
        "likes\n"
        f"forum,c1,https://forum.example.org/t/1,marie,Marie,120,\"Orange, encore en panne\","
        f"fr,{created},3\n"
        f"x,c2,,bob,Bob,oops,Apple rocks,en,{created},1\n",
        encoding="utf-8",
    )
    start_worker(worker_env)

    for path in (jsonl, csv_path):
        result = subprocess.run([*vigie_command(), "ingest", "file", str(path), "--quiet"],
                                env=worker_env, cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert summary["failed"] == 0 and summary["delivered"] == summary["sent"]

    valid = consume(kafka_settings, "posts.valid", expected=len(posts) + 1, timeout_s=90)
    dead = consume(kafka_settings, "posts.dlq", expected=2, timeout_s=30)
    assert set(keys_of(valid)) == {post_key(p) for p in posts} | {"forum:c1"}
    reasons = sorted(json.loads(r.value)["reason"] for r in dead)
    assert reasons == ["bad_json", "invalid_fields"]


def test_ingest_exits_non_zero_when_kafka_is_unreachable(worker_env, tmp_path: Path):
    path = tmp_path / "one.jsonl"
    path.write_bytes(orjson.dumps(generated_posts(1)[0]) + b"\n")
    env = {**worker_env, "VIGIE_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
           "VIGIE_PRODUCER_DELIVERY_TIMEOUT_MS": "3000"}
    result = subprocess.run([*vigie_command(), "ingest", "file", str(path), "--quiet"],
                            env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "127.0.0.1:1" in result.stderr
