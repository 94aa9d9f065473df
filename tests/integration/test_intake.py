"""The intake path on the real broker and the real worker: validate (a plain aiokafka loop)
passes on only the posts that mention a watched brand, dead-letters bad records, and the
score stage counts a post resent by a source once, across a crash of the worker too."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import orjson

from pipeline.producer import PostProducer
from pipeline.records import post_key
from tests.integration.conftest import consume


def post(number: int, text: str, run: str = "r") -> dict:
    return {"schema_version": 1, "platform": "forum", "id": f"{run}-{number}",
            "author": {"handle": f"user{number}"}, "text": text,
            "created_at": datetime.now(UTC).isoformat()}


def matched(number: int, run: str = "r") -> dict:
    # No language given: validate detects it (French here) for the posts that go on.
    return post(number, f"Encore une panne chez Orange ce matin, numéro {number}, "
                        "le réseau ne marche plus du tout", run)


def unmatched(number: int, run: str = "r") -> dict:
    return post(number, f"Une belle journée au marché, rien à signaler {number}", run)


def produce(settings, posts, raw: dict[str, bytes] | None = None) -> None:
    with PostProducer(settings, source="test") as producer:
        for one in posts:
            producer.send(one)
        for key, value in (raw or {}).items():
            producer.send_raw(key, value)
    assert producer.failed == 0


def mention_keys(settings, expected: int, timeout_s: float = 120) -> Counter:
    records = consume(settings, "mentions.scored", expected=expected, timeout_s=timeout_s)
    values = [orjson.loads(record.value) for record in records]
    return Counter(value["post_key"] for value in values if "tick" not in value)


def test_only_posts_about_a_watched_brand_go_on_and_a_resent_one_counts_once(
        kafka_settings, worker_env, start_worker):
    worker = start_worker({**worker_env, "VIGIE_AGENTS": "validate,score"})
    watched = [matched(n) for n in range(20)]
    others = [unmatched(100 + n) for n in range(180)]
    produce(kafka_settings, watched + others, raw={"forum:bad": b'{"schema_version": 1,'})
    produce(kafka_settings, watched[:5])  # a source resending after a reconnect

    valid = consume(kafka_settings, "posts.valid", expected=20, timeout_s=90)
    dead = consume(kafka_settings, "posts.dlq", expected=1, timeout_s=30)
    mentions = mention_keys(kafka_settings, expected=20)

    on_valid = {record.key.decode() for record in valid}
    assert on_valid == {post_key(p) for p in watched}, "only posts about a watched brand"
    languages = {orjson.loads(record.value)["language"] for record in valid}
    assert languages == {"fr"}, "the language of a post that goes on is detected"
    letters = [json.loads(record.value) for record in dead]
    assert [(letter["reason"], letter["stage"]) for letter in letters] == \
        [("bad_json", "validate")]
    assert mentions == Counter({post_key(p): 1 for p in watched}), "a resent post counts once"
    text = worker.metrics_text()
    assert "vigie_posts_unmatched_total 180.0" in text
    assert "vigie_posts_duplicate_total 5.0" in text


def test_a_resent_post_counts_once_across_a_crash_and_no_post_is_lost(
        kafka_settings, worker_env, start_worker):
    env = {**worker_env, "VIGIE_AGENTS": "validate,score"}
    worker = start_worker(env)
    first = matched(0, run="a")
    produce(kafka_settings, [first])
    assert mention_keys(kafka_settings, expected=1) == Counter({post_key(first): 1})
    time.sleep(6.0)  # the worker commits (and writes its dedup changelog) meanwhile

    stream = [matched(n, run="b") if n % 10 == 0 else unmatched(n, run="b")
              for n in range(4000)]
    produce(kafka_settings, stream[:2000])
    time.sleep(1.0)
    worker.kill()  # SIGKILL mid-stream: nothing flushed, nothing committed since
    produce(kafka_settings, stream[2000:] + [first])  # and the first post, resent
    start_worker(env)

    wanted = [first] + [p for p in stream if "Orange" in p["text"]]
    mentions = mention_keys(kafka_settings, expected=len(wanted), timeout_s=180)

    assert set(mentions) == {post_key(p) for p in wanted}, "no post lost"
    assert mentions[post_key(first)] == 1, "the resent post counts once after the restart"
    valid = consume(kafka_settings, "posts.valid", expected=len(wanted), timeout_s=30)
    assert {record.key.decode() for record in valid} == {post_key(p) for p in wanted}
