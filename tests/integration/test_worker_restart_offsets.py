"""After a worker restart (crash or graceful stop), every partition's committed offset
reaches the end of posts.raw (the validate loop's group) and of posts.valid (the Faust
agents' group) once the posts are processed: no false lag, and a second crash does not
re-read what the first restart already handled.

The whole worker runs (its start-up, longer than the validate stage's alone, is what let
Faust read and acknowledge records twice before seeking), while posts keep arriving.
"""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline.producer import PostProducer
from pipeline.records import post_key
from tests.integration.conftest import watchlist_of
from tests.integration.test_ingest_validate import WATCHED, consume, generated_posts, produce


def uncommitted(settings, group: str, topic: str = "posts.raw") -> dict[int, int]:
    """Per partition of `topic`: end offset minus the group's committed offset."""
    topic = settings.topic(topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=group,
                             enable_auto_commit=False)
    try:
        numbers = sorted(consumer.partitions_for_topic(topic))
        partitions = [TopicPartition(topic, p) for p in numbers]
        ends = consumer.end_offsets(partitions)
        return {tp.partition: ends[tp] - (consumer.committed(tp) or 0) for tp in partitions}
    finally:
        consumer.close()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_committed_offsets_reach_the_end_after_a_restart(
        how, kafka_settings, worker_env, start_worker, tmp_path):
    group = worker_env["VIGIE_APP_ID"]
    worker_env = {**worker_env,
                  "VIGIE_WATCHLIST": watchlist_of(tmp_path / "watchlist.yaml", WATCHED)}
    posts = generated_posts(300, seed=21)
    assert len(posts) > 7000
    worker = start_worker(worker_env)
    quarter = len(posts) // 4
    produce(kafka_settings, posts[:quarter])
    time.sleep(2.0)  # stopped while it works through them
    if how == "SIGKILL":
        worker.kill()
    else:
        assert worker.stop() == 0, worker.log()[-3000:]

    def trickle() -> None:  # a live source: posts keep coming during the restart
        with PostProducer(kafka_settings, source="test") as producer:
            for post in posts[quarter:]:
                producer.send(post)
                time.sleep(1 / 300)

    source = threading.Thread(target=trickle)
    source.start()
    restarted = start_worker(worker_env)
    source.join()

    valid = consume(kafka_settings, "posts.valid", expected=len(posts), timeout_s=120)
    assert {record.key.decode() for record in valid} == {post_key(p) for p in posts}

    # Faust commits every 2.8 s, the validate loop after each batch: within 30 s every
    # partition is committed to its end (the old worker kept 1,100-1,500 offsets of 3 of
    # 4 partitions for minutes).
    def left() -> dict[str, dict[int, int]]:
        return {"posts.raw": uncommitted(kafka_settings, f"{group}-validate"),
                "posts.valid": uncommitted(kafka_settings, group, "posts.valid")}

    deadline = time.monotonic() + 30
    lags = left()
    while any(any(lag.values()) for lag in lags.values()) and time.monotonic() < deadline:
        time.sleep(1)
        lags = left()
    assert not any(any(lag.values()) for lag in lags.values()), \
        f"uncommitted per partition: {lags}\n{restarted.log()[-2000:]}"
