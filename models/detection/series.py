"""The detector on a plain count series: one value per interval, as in the NAB files.

`SeriesDetector.update(t, x)` scores the interval against the expectation learnt so far,
steps the incident lifecycle, then learns the value: a decision at `t` uses nothing after
`t`. `alert` is true where an incident opens or escalates, which is what `vigie detect
series` writes and what the NAB scorer counts as a detection.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from models.detection.config import DetectorConfig
from models.detection.lifecycle import SEVERITIES, IncidentLifecycle, LifecycleStep
from models.detection.spike import SpikeDetector, Surprise

__all__ = ["SeriesDetector", "SeriesPoint", "run_series", "severity_of"]


def severity_of(score: float, config: DetectorConfig) -> int:
    """Severity index (into SEVERITIES) of a surprise score, after any boosts."""
    if score >= config.threshold("critical_score"):
        return 2
    if score >= config.threshold("warning_score"):
        return 1
    return 0


@dataclass(frozen=True)
class SeriesPoint:
    timestamp: datetime
    surprise: Surprise
    step: LifecycleStep
    severity: str | None  # of the open incident after this interval, None when none is open

    @property
    def alert(self) -> bool:
        return self.step.event == "opened" or self.step.escalated


class SeriesDetector:
    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.spike = SpikeDetector(config)
        self.lifecycle = IncidentLifecycle(quiet_intervals=config.quiet_intervals)

    def update(self, t: datetime, x: float) -> SeriesPoint:
        surprise = self.spike.score_one(t, x)
        severity = severity_of(surprise.z, self.config)
        step = self.lifecycle.step(surprise.trigger, surprise.active, severity)
        self.spike.learn_one(t, x, surprise)
        current = SEVERITIES[self.lifecycle.severity] if self.lifecycle.is_open else None
        return SeriesPoint(t, surprise, step, current)


def run_series(
    points: Iterable[tuple[datetime, float]], config: DetectorConfig
) -> list[SeriesPoint]:
    detector = SeriesDetector(config)
    return [detector.update(t, x) for t, x in points]
