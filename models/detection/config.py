"""Detector thresholds, with the per-brand overrides a watchlist may set."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from models.detection.volume import VolumeParams

__all__ = ["DetectorConfig", "OVERRIDABLE_KEYS"]

# The keys a brand's `thresholds:` mapping in the watchlist may set (see with_overrides).
OVERRIDABLE_KEYS = (
    "interval_seconds",
    "window_minutes",
    "sensitivity",
    "open_score",
    "open_rarity",
    "close_score",
    "warning_score",
    "critical_score",
    "min_negative",
    "min_ratio",
    "quiet_minutes",
    "critical_reach",
    "alarming_share",
)


@dataclass(frozen=True)
class DetectorConfig:
    """Every threshold of the detector. Scores are in standard deviations above expectation.

    - interval_seconds: length of one interval (the unit of counting and of decisions).
    - window_minutes: evidence window an incident reports ("312 negative posts in 10 min").
    - open_score: surprise (z) of an interval's negative volume needed to open an incident.
    - open_rarity: and it must be rare for this brand: -log10 of the share of recent
      intervals (half-life `tail_half_life_days`) at least as surprising; 3 = 1 in 1000.
    - close_score: surprise below which an interval counts as calm (the hysteresis).
    - warning_score / critical_score: severity levels, compared with the surprise plus the
      boosts for an alarming negative share and for reach (see BrandMonitor).
    - sensitivity: divides every score threshold: 2.0 makes the detector twice as eager.
    - min_negative: fewest negative posts in the evidence window that may open an incident
      (in series mode: the fewest counts in one interval). 0 -> 3 posts is not a crisis.
    - min_ratio: the observed volume must also be at least this multiple of the expected.
    - quiet_minutes: the quiet period: an incident stays open at least this long after it
      opens, and no new incident opens (no new page, escalations aside) for that brand
      meanwhile; it resolves once that period is over and the evidence window is calm
      (lifecycle.py). Chosen by leave-one-series-out (RESULTS.md).
    - critical_reach: negative reach in the window that on its own adds a severity level.
    - alarming_share: negative share of mentions that adds a severity level.
    """

    interval_seconds: int = 60
    window_minutes: int = 10
    open_score: float = 4.0
    open_rarity: float = 3.0
    close_score: float = 4.0
    warning_score: float = 12.0
    critical_score: float = 16.0
    sensitivity: float = 1.0
    min_negative: int = 10
    min_ratio: float = 1.5
    quiet_minutes: float = 2880.0
    critical_reach: int = 1_000_000
    alarming_share: float = 0.6
    top_posts: int = 5
    top_terms: int = 10
    # The incident's `trend` (and its alert chart): 2 hours of 1-minute intervals, enough
    # to see the wave against its normal (about 13 KiB in each event and in the state).
    trend_intervals: int = 120
    tail_half_life_days: float = 3.0
    tail_prior_days: float = 2.0
    volume: VolumeParams = VolumeParams()

    def __post_init__(self) -> None:
        positive = (
            "interval_seconds",
            "window_minutes",
            "sensitivity",
            "quiet_minutes",
            "tail_half_life_days",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        scores = ("open_score", "open_rarity", "close_score", "warning_score", "critical_score")
        for name in (*scores, "min_ratio", "tail_prior_days"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.close_score > self.open_score:
            raise ValueError("close_score must not exceed open_score (hysteresis)")
        if self.min_negative < 0 or self.critical_reach < 0:
            raise ValueError("min_negative and critical_reach must be >= 0")
        if not 0.0 <= self.alarming_share <= 1.0:
            raise ValueError("alarming_share must be between 0 and 1")

    # -- derived, in intervals -----------------------------------------------------------
    @property
    def window_intervals(self) -> int:
        return max(1, round(self.window_minutes * 60 / self.interval_seconds))

    @property
    def quiet_intervals(self) -> int:
        return max(1, math.ceil(self.quiet_minutes * 60 / self.interval_seconds))

    def threshold(self, name: str) -> float:
        """A score threshold after sensitivity: `threshold("open_score")`."""
        return float(getattr(self, name)) / self.sensitivity

    def severity_level(self, score: float) -> int:
        """Severity index (0 info, 1 warning, 2 critical) of a surprise, before any boosts."""
        if score >= self.threshold("critical_score"):
            return 2
        if score >= self.threshold("warning_score"):
            return 1
        return 0

    def with_overrides(self, overrides: dict[str, Any] | None) -> DetectorConfig:
        """A copy with a brand's `thresholds:` applied; ValueError names any bad key."""
        if not overrides:
            return self
        if not isinstance(overrides, dict):
            raise ValueError("thresholds must be a mapping of name -> number")
        types = {f.name: f.type for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in OVERRIDABLE_KEYS:
                raise ValueError(
                    f"unknown threshold {key!r}; allowed: {', '.join(OVERRIDABLE_KEYS)}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"threshold {key!r} must be a number, got {value!r}")
            wants_int = types[key] in ("int", int)
            if wants_int and float(value) != int(value):
                raise ValueError(f"threshold {key!r} must be a whole number, got {value!r}")
            changes[key] = int(value) if wants_int else float(value)
        try:
            return replace(self, **changes)
        except ValueError as exc:
            raise ValueError(f"thresholds {sorted(changes)}: {exc}") from None
