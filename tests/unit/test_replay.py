from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson

from pipeline.replay import Pacer, csv_row_to_post, read_records
from pipeline.schema import validate_post


def test_csv_rows_become_nested_posts():
    row = {"platform": "forum", "id": "7", "author_handle": "marie", "author_name": "Marie",
           "author_followers": "120", "author_verified": "true", "text": "Orange en panne",
           "created_at": "2026-03-03T12:00:00+01:00", "likes": "3", "views": "", "url": ""}
    post = csv_row_to_post(row)
    clean, errors = validate_post(post, now=datetime(2026, 3, 4, tzinfo=UTC))
    assert errors == []
    assert clean["author"] == {"handle": "marie", "display_name": "Marie", "followers": 120,
                               "verified": True}
    assert clean["engagement"]["likes"] == 3 and clean["url"] is None


def test_unreadable_lines_are_kept_for_the_dead_letter_topic(tmp_path):
    path = tmp_path / "p.jsonl"
    post = {"platform": "x", "id": "1", "created_at": "2026-03-03T12:00:00Z"}
    path.write_bytes(orjson.dumps(post) + b"\n\n{broken\n")
    records = list(read_records(path))
    assert [r.key for r in records] == ["twitter:1", "file:p.jsonl:3"]
    assert records[1].value == b"{broken" and records[1].created_at is None


def test_speed_paces_by_created_at_and_rate_by_count():
    start = datetime(2026, 3, 3, tzinfo=UTC)
    pacer = Pacer(speed=100.0)  # 10 s of posts -> 0.1 s
    began = time.monotonic()
    for second in (0, 5, 10):
        pacer.wait(start + timedelta(seconds=second))
    assert 0.09 <= time.monotonic() - began < 0.5
    pacer = Pacer(rate=50.0)
    began = time.monotonic()
    for _ in range(6):
        pacer.wait(None)
    assert 0.09 <= time.monotonic() - began < 0.5
