"""The score agent on the real broker: posts.valid in, one mention per (post, brand) out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from models.detection.storylines import unpack_int8
from pipeline.watchlist import load_watchlist
from tests.integration.conftest import ROOT, consume

pytestmark = pytest.mark.integration


def post(post_id: str, text: str, language: str = "fr", followers: int = 50) -> dict:
    return {"schema_version": 1, "platform": "twitter", "id": post_id,
            "url": f"https://x.com/u/status/{post_id}",
            "author": {"handle": "u", "display_name": "U", "followers": followers,
                       "verified": False},
            "text": text, "text_truncated": False, "language": language,
            "language_detected": False, "created_at": datetime.now(UTC).isoformat(),
            "reply_to": None, "reshare_of": None, "quote_of": None,
            "engagement": {"likes": 1, "reshares": 0, "replies": 0, "quotes": 0, "views": 9}}


def test_posts_become_mentions_per_brand_and_bad_ones_are_dead_lettered(
        kafka_settings, worker_env, start_worker):
    worker_env["VIGIE_AGENTS"] = "score"
    worker_env["VIGIE_WATCHLIST"] = str(ROOT / "config" / "watchlist.yaml")
    worker = start_worker(worker_env)
    records = [
        ("twitter:1", post("1", "Orange et la Société Générale en panne toute la journée, "
                                "c'est inadmissible", followers=1200)),
        ("twitter:2", post("2", "Really impressed with Apple support today", "en")),
        ("twitter:3", post("3", "Un bon jus d'orange le matin")),
        ("twitter:4", b"{ this is not a post"),
        ("twitter:5", post("5", "Orange France: merci pour la réactivité, tout remarche")),
    ]
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    for key, value in records:
        body = value if isinstance(value, bytes) else orjson.dumps(value)
        producer.send(kafka_settings.topic("posts.valid"), key=key.encode(), value=body)
    producer.flush()
    producer.close()

    brands = len(load_watchlist(Path(worker_env["VIGIE_WATCHLIST"])).brands)
    # The four mentions, and at least one round of clock ticks (one per watched brand).
    records = [orjson.loads(r.value) for r in consume(
        kafka_settings, "mentions.scored", expected=4 + brands, timeout_s=120)]
    dead = consume(kafka_settings, "posts.dlq", expected=1, timeout_s=30)
    # Beside the mentions, the clock ticks of the score stage (docs/records.md): how far
    # this worker, which holds every partition of posts.valid, has read each.
    mentions = [r for r in records if "tick" not in r]
    ticks = [r["progress"] for r in records if "tick" in r]
    assert ticks and all(t["partitions"] == kafka_settings.partitions for t in ticks)
    latest = max(ticks, key=lambda t: t["at"])
    assert sorted(latest["progress"]) == [str(p) for p in range(kafka_settings.partitions)]

    by_pair = {(m["post_key"], m["brand"]): m for m in mentions}
    assert sorted(by_pair) == [("twitter:1", "orange"), ("twitter:1", "societe-generale"),
                               ("twitter:2", "apple"), ("twitter:5", "orange")]
    assert len(mentions) == 4, "one mention per (post, brand), none for 'jus d'orange'"
    outage = by_pair[("twitter:1", "orange")]
    assert outage["sentiment"]["label"] == "negative"
    assert abs(sum(outage["sentiment"]["scores"].values()) - 1) < 0.01
    assert outage["reach"] == 1200 and outage["model"].startswith("vigie-e5-small")
    # Its sentence vector, centred on French, for joining storylines across languages.
    assert outage["schema_version"] == 2
    assert len(unpack_int8(outage["vector"])) == 384
    assert by_pair[("twitter:2", "apple")]["sentiment"]["label"] == "positive"
    assert by_pair[("twitter:5", "orange")]["sentiment"]["label"] == "positive"
    letter = json.loads(dead[0].value)
    assert letter["stage"] == "score" and letter["key"] == "twitter:4"
    metrics_text = worker.metrics_text()
    assert "vigie_posts_unmatched_total 1.0" in metrics_text
    assert 'vigie_mentions_total{brand="orange",sentiment="negative"} 1.0' in metrics_text
