"""The one place where alerting touches Prometheus metrics (pipeline/metrics.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline import metrics as _metrics

__all__ = [
    "count",
    "observe_delivery",
    "observe_end_to_end",
    "first_post_time",
    "pending",
]


def count(receiver: str, receiver_type: str, outcome: str) -> None:
    _metrics.NOTIFICATIONS.labels(receiver, receiver_type, outcome).inc()


def pending(receiver: str, receiver_type: str, change: int) -> None:
    """One more (+1) or one fewer (-1) notification being delivered to this receiver."""
    _metrics.NOTIFICATIONS_PENDING.labels(receiver, receiver_type).inc(change)


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
