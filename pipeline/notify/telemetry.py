"""The one place where alerting touches Prometheus metrics (pipeline/metrics.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline import metrics as _metrics
from pipeline.topics import ALERTS_DLQ

__all__ = [
    "count",
    "observe_delivery",
    "observe_end_to_end",
    "first_post_time",
    "pending",
    "count_dead_letter",
    "dead_letter_reason",
]


def count(receiver: str, receiver_type: str, outcome: str) -> None:
    _metrics.NOTIFICATIONS.labels(receiver, receiver_type, outcome).inc()


def pending(receiver: str, receiver_type: str, change: int) -> None:
    """One more (+1) or one fewer (-1) notification being delivered to this receiver."""
    _metrics.NOTIFICATIONS_PENDING.labels(receiver, receiver_type).inc(change)


def dead_letter_reason(status: int | None, reason: str) -> str:
    """A bounded label for why a notification ended in alerts.dlq (the record keeps the
    full text): the answer's status code, or the kind of failure."""
    if status is not None:
        return f"status_{status}"
    if reason.startswith("no answer within"):
        return "timeout"
    if reason.startswith("receiver misconfigured"):
        return "misconfigured"
    if "is not configured" in reason:
        return "unknown_receiver"
    return "error"


def count_dead_letter(record: dict[str, Any]) -> None:
    reason = dead_letter_reason(record.get("status"), str(record.get("reason", "")))
    _metrics.DEAD_LETTERS.labels(dlq=ALERTS_DLQ, stage="alert", reason=reason).inc()


def observe_delivery(receiver_type: str, seconds: float) -> None:
    _metrics.NOTIFICATION_SECONDS.labels(receiver_type).observe(seconds)


def first_post_time(event: dict[str, Any]) -> float | None:
    """The earliest created_at among the incident's top posts (else opened_at)."""
    times = []
    for post in event.get("top_posts") or []:
        if isinstance(post, dict) and isinstance(post.get("created_at"), str):
            times.append(post["created_at"])
    if not times and isinstance(event.get("opened_at"), str):
        times.append(event["opened_at"])
    parsed = []
    for value in times:
        try:
            parsed.append(datetime.fromisoformat(value).timestamp())
        except ValueError:
            continue
    return min(parsed) if parsed else None


def observe_end_to_end(event: dict[str, Any], now: float) -> None:
    first = first_post_time(event)
    if first is not None:
        _metrics.ALERT_END_TO_END_SECONDS.observe(max(0.0, now - first))
