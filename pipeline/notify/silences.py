"""Silences: time-boxed "do not send" rules for a brand, kept as records in Kafka.

A silence names a brand and optionally a severity: it then silences notifications at
that severity *or below* ("silence warnings for acme" keeps paging for criticals). Pure
module: records, matching and duration parsing; the Kafka side is in `kafka_store`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pipeline.notify.policy import severity_at_least
from pipeline.records import SEVERITIES

__all__ = ["Silence", "SilenceError", "active_silence", "new_silence", "parse_duration"]

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_BRAND = re.compile(r"^[a-z0-9_-]+$")


class SilenceError(ValueError):
    """A silence that cannot be created as asked."""


def parse_duration(text: str) -> float:
    """'2h', '90m', '1d12h', '30s' -> seconds."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise SilenceError(f"bad duration {text!r}: use e.g. 30m, 2h, 1d12h")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = days * 86400 + hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise SilenceError(f"bad duration {text!r}: must be more than zero")
    return float(total)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _epoch(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@dataclass(frozen=True)
class Silence:
    id: str
    brand: str
    severity: str | None  # None: every severity
    starts_at: float
    ends_at: float
    reason: str
    created_by: str
    created_at: float
    expired_by: str | None = None

    def is_active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, brand: str, severity: str, now: float) -> bool:
        if brand != self.brand or not self.is_active(now):
            return False
        return self.severity is None or severity_at_least(self.severity, severity)

    def expire(self, now: float, by: str) -> Silence:
        return replace(self, ends_at=min(self.ends_at, now), expired_by=by)

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("starts_at", "ends_at", "created_at"):
            record[name] = _iso(record[name])
        return {"schema_version": 1, **record}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Silence:
        try:
            return cls(
                id=str(record["id"]),
                brand=str(record["brand"]),
                severity=record.get("severity"),
                starts_at=_epoch(record["starts_at"]),
                ends_at=_epoch(record["ends_at"]),
                reason=str(record.get("reason", "")),
                created_by=str(record.get("created_by", "")),
                created_at=_epoch(record.get("created_at", record["starts_at"])),
                expired_by=record.get("expired_by"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SilenceError(f"not a silence record: {exc}") from None


def new_silence(
    brand: str,
    duration_s: float,
    reason: str,
    created_by: str,
    now: float,
    severity: str | None = None,
    starts_at: float | None = None,
) -> Silence:
    if not _BRAND.match(brand):
        raise SilenceError(f"bad brand id {brand!r}: expected [a-z0-9_-]+")
    if severity is not None and severity not in SEVERITIES:
        raise SilenceError(f"bad severity {severity!r}: expected one of {', '.join(SEVERITIES)}")
    if not reason.strip():
        raise SilenceError("a silence needs a reason")
    start = now if starts_at is None else starts_at
    return Silence(
        id=uuid.uuid4().hex[:12],
        brand=brand,
        severity=severity,
        starts_at=start,
        ends_at=start + duration_s,
        reason=reason.strip(),
        created_by=created_by,
        created_at=now,
    )


def active_silence(
    silences: Iterable[Silence], brand: str, severity: str, now: float
) -> Silence | None:
    """The first silence that covers this brand and severity now, if any."""
    for silence in silences:
        if silence.matches(brand, severity, now):
            return silence
    return None
