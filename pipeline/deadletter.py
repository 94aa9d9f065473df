"""Dead-letter records: what a stage could not use, why, and the original bytes."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import metrics
from pipeline.schema import FieldError


def dead_letter(
    stage: str,
    errors: Iterable[FieldError],
    *,
    key: bytes | None,
    original: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    reason: str,
    dlq: str,
) -> bytes:
    """The JSON value of a dead letter (docs/records.md); the original is kept byte for byte.

    `dlq` is the dead-letter topic it is meant for (logical name), for the count by topic,
    stage and reason (`vigie_dead_letters_total`).
    """
    metrics.DEAD_LETTERS.labels(dlq=dlq, stage=stage, reason=reason).inc()
    record: dict[str, Any] = {
        "schema_version": 1,
        "stage": stage,
        "reason": reason,
        "errors": [error.as_dict() for error in errors],
        "key": key.decode("utf-8", "replace") if key is not None else None,
        "original": base64.b64encode(original).decode("ascii") if original is not None else None,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "failed_at": datetime.now(UTC).isoformat(),
    }
    return orjson.dumps(record)


def original_bytes(record: dict[str, Any]) -> bytes | None:
    """The original bytes of a dead letter, for replaying it once fixed."""
    encoded = record.get("original")
    return base64.b64decode(encoded) if encoded is not None else None
