"""Reading posts from JSONL or CSV files, and pacing their replay.

A line that is not a usable post is still sent as it is: the validate stage is the one
judge of validity, and its dead-letter topic is where a bad line is reported with its
reason, so nothing read from a file is dropped on the way.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from pipeline.records import post_key
from pipeline.schema import parse_timestamp

CSV_AUTHOR = {"author_handle": "handle", "author_name": "display_name",
              "author_followers": "followers", "author_verified": "verified"}
CSV_ENGAGEMENT = ("likes", "reshares", "replies", "quotes", "views")


@dataclass(frozen=True)
class FileRecord:
    key: str
    value: bytes
    created_at: datetime | None   # for --speed pacing; None when unreadable
    line: int | None = None       # where it starts in its file, for reports


def _csv_int(value: str) -> Any:
    value = value.strip()
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value  # left for validation to reject with the field's name


def csv_row_to_post(row: dict[str, str]) -> dict[str, Any]:
    """A flat CSV row (columns documented in the README) -> a nested post object."""
    post: dict[str, Any] = {"schema_version": 1, "author": {}, "engagement": {}}
    for column, value in row.items():
        if column is None:
            continue
        if column in CSV_AUTHOR:
            name = CSV_AUTHOR[column]
            if name == "followers":
                post["author"][name] = _csv_int(value)
            elif name == "verified":
                post["author"][name] = value.strip().lower() in {"1", "true", "yes"}
            else:
                post["author"][name] = value
        elif column in CSV_ENGAGEMENT:
            post["engagement"][column] = _csv_int(value)
        elif column == "schema_version":
            post[column] = _csv_int(value)
        else:
            post[column] = value if value != "" else None
    return post


def read_records(path: Path) -> Iterator[FileRecord]:
    """Records from a .jsonl/.json-lines or .csv file, in file order."""
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
    else:
        yield from _read_jsonl(path)


def _created_at(obj: Any) -> datetime | None:
    try:
        return parse_timestamp(obj.get("created_at")) if isinstance(obj, dict) else None
    except ValueError:
        return None


def _read_jsonl(path: Path) -> Iterator[FileRecord]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None
            key = post_key(obj) if isinstance(obj, dict) else f"file:{path.name}:{number}"
            yield FileRecord(key, line, _created_at(obj), number)


def _read_csv(path: Path) -> Iterator[FileRecord]:
    with path.open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            # The line the row ended on (a quoted field may span several).
            line = reader.line_num
            post = csv_row_to_post(row)
            try:
                value = orjson.dumps(post)
            except TypeError:  # undecodable bytes kept as surrogates
                value = str(post).encode("utf-8", "surrogateescape")
            yield FileRecord(post_key(post), value, _created_at(post), line)


class Pacer:
    """Waits so that records go out at `rate` per second, or at `speed` x their own pace."""

    def __init__(self, rate: float | None = None, speed: float | None = None) -> None:
        if rate is not None and speed is not None:
            raise ValueError("choose --rate or --speed, not both")
        self.rate = rate
        self.speed = speed
        self._started = time.monotonic()
        self._sent = 0
        self._first_event: datetime | None = None

    def wait(self, created_at: datetime | None) -> None:
        if self.rate:
            due = self._started + self._sent / self.rate
        elif self.speed and created_at is not None:
            if self._first_event is None:
                self._first_event = created_at
            offset = (created_at - self._first_event).total_seconds() / self.speed
            due = self._started + max(0.0, offset)
        else:
            due = 0.0
        self._sent += 1
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
