"""Dead-letter records: what a stage could not use, why, and the original bytes.

A dead letter always fits on its topic, whatever the size of what it reports: it keeps
the original whole up to `DEAD_LETTER_ORIGINAL_BYTES`, else that much of its beginning,
and always the original's size and SHA-256 (pipeline/limits.py). A stage that builds a
dead letter through `dead_letter` therefore never stops on a record that is too large.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline import metrics
from pipeline.limits import (
    DEAD_LETTER_KEY_BYTES,
    DEAD_LETTER_MAX_ERRORS,
    DEAD_LETTER_MESSAGE_CHARS,
    DEAD_LETTER_ORIGINAL_BYTES,
    MAX_MESSAGE_BYTES,
)
from pipeline.schema import FieldError

__all__ = [
    "DEAD_LETTER_SCHEMA_VERSION",
    "dead_letter",
    "dead_letter_key",
    "notification_dead_letter",
    "original_bytes",
    "too_large_errors",
]

DEAD_LETTER_SCHEMA_VERSION = 2
NOTIFICATION_DEAD_LETTER_SCHEMA_VERSION = 1


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The Kafka key of a dead letter: the original key, cut to a bounded length."""
    return key if key is None else key[:DEAD_LETTER_KEY_BYTES]


def too_large_errors(size: int, topic: str) -> list[FieldError]:
    """The error of a record that Kafka cannot take (reason `too_large`)."""
    return [FieldError("$", f"record of {size} bytes cannot be written to {topic}: Kafka "
                            f"records are limited to {MAX_MESSAGE_BYTES} bytes")]


def _bounded_errors(errors: Iterable[FieldError]) -> list[dict[str, str]]:
    kept = []
    for number, error in enumerate(errors):
        if number == DEAD_LETTER_MAX_ERRORS:
            kept.append({"field": "$", "message": "more errors not listed"})
            break
        kept.append({"field": error.field[:DEAD_LETTER_MESSAGE_CHARS],
                     "message": error.message[:DEAD_LETTER_MESSAGE_CHARS]})
    return kept


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
    """The JSON value of a dead letter (docs/records.md), small enough for any Vigie topic.

    `dlq` is the dead-letter topic it is meant for (logical name), for the count by topic,
    stage and reason (`vigie_dead_letters_total`).
    """
    metrics.DEAD_LETTERS.labels(dlq=dlq, stage=stage, reason=reason).inc()
    record: dict[str, Any] = {
        "schema_version": DEAD_LETTER_SCHEMA_VERSION,
        "stage": stage,
        "reason": reason,
        "errors": _bounded_errors(errors),
        "key": key[:DEAD_LETTER_KEY_BYTES].decode("utf-8", "replace") if key is not None
        else None,
        "original": None,
        "original_size": None,
        "original_sha256": None,
        "original_truncated": False,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "failed_at": datetime.now(UTC).isoformat(),
    }
    if original is not None:
        kept = original[:DEAD_LETTER_ORIGINAL_BYTES]
        record.update(
            original=base64.b64encode(kept).decode("ascii"),
            original_size=len(original),
            original_sha256=hashlib.sha256(original).hexdigest(),
            original_truncated=len(kept) < len(original),
        )
    return orjson.dumps(record)


def original_bytes(record: dict[str, Any]) -> bytes | None:
    """The original bytes kept in a dead letter, for replaying it once fixed (only the
    beginning when `original_truncated` is true)."""
    encoded = record.get("original")
    return base64.b64decode(encoded) if encoded is not None else None


def notification_dead_letter(
    *,
    key: str,
    incident_id: str,
    brand: str,
    receiver: str,
    receiver_type: str,
    kind: str,
    attempts: int,
    status: int | None,
    reason: str,
    failed_at: str,
    incident: dict[str, Any],
) -> dict[str, Any]:
    """An `alerts.dlq` record for a notification that finally failed (docs/alerting.md):
    enough to resend it by hand, the incident event included. Unlike `dead_letter` it
    reports a delivery, not a record the stage could not read, hence its own shape; the
    alert stage's writer still bounds its size (a too large one becomes a `dead_letter`)."""
    return {
        "schema_version": NOTIFICATION_DEAD_LETTER_SCHEMA_VERSION,
        "stage": "alert",
        "key": key,
        "incident_id": incident_id,
        "brand": brand,
        "receiver": receiver,
        "receiver_type": receiver_type,
        "type": kind,
        "attempts": attempts,
        "status": status,
        "reason": reason,
        "failed_at": failed_at,
        "incident": incident,
    }
