"""The detector on a plain count series: one value per interval, as in the NAB files.

`SeriesDetector` feeds each value to a `BrandMonitor` as that interval's negative posts
(known only by number) and closes the interval: the decisions are those the pipeline
makes for a brand, event for event. `alert` is true where the monitor emits an event that
pages a person (`pages_someone`: an opening or an escalation); that is what `vigie detect
series` writes and what the NAB scorer counts as a detection. A decision at `t` uses
nothing after `t`.

Each value is judged on its own (the evidence window is one interval): the rows of a
benchmark series are already the counts to judge. The pipeline judges the sum of its
last `window_minutes` of negative posts at every interval; that is the only difference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from models.detection.config import DetectorConfig
from models.detection.lifecycle import SEVERITIES
from models.detection.monitor import BrandMonitor, pages_someone
from models.detection.spike import Surprise

__all__ = ["SeriesDetector", "SeriesPoint", "run_series", "series_config"]


def series_config(config: DetectorConfig, interval_seconds: int) -> DetectorConfig:
    """`config` for a series of `interval_seconds` rows, each row judged on its own."""
    return replace(
        config,
        interval_seconds=interval_seconds,
        window_minutes=max(1, round(interval_seconds / 60)),
    )


@dataclass(frozen=True)
class SeriesPoint:
    timestamp: datetime
    surprise: Surprise
    events: tuple[dict[str, Any], ...]  # incident events of this interval (docs/records.md)
    severity: str | None  # of the open incident after this interval, None when none is open

    @property
    def alert(self) -> bool:
        """An event that pages a person: what NAB counts as a detection."""
        return any(pages_someone(event) for event in self.events)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of this interval's events: ("opened",), ("updated", "resolved")..."""
        return tuple(str(event["event"]) for event in self.events)


class SeriesDetector:
    """A `BrandMonitor` fed one count per interval; `update(t, x)` judges then learns.

    >>> from datetime import UTC, datetime, timedelta
    >>> from models.detection.config import DetectorConfig
    >>> start = datetime(2026, 11, 2, tzinfo=UTC)
    >>> week = [(start + timedelta(hours=h), 20 + h % 5) for h in range(24 * 7)]
    >>> wave = [(start + timedelta(hours=24 * 7 + h), 200) for h in range(3)]
    >>> points = run_series(week + wave, DetectorConfig(interval_seconds=3600))
    >>> [event["event"] for point in points for event in point.events]
    ['opened']
    """

    def __init__(self, config: DetectorConfig, brand: str = "series") -> None:
        self.config = series_config(config, config.interval_seconds)
        self.monitor = BrandMonitor(brand, brand, self.config)
        self._step = timedelta(seconds=self.config.interval_seconds)

    def update(self, t: datetime, x: float) -> SeriesPoint:
        self.monitor.add_counts(negative=max(0.0, float(x)))
        events = self.monitor.close_interval(t, t + self._step)
        surprise = self.monitor.last_surprise
        assert surprise is not None  # set by every close_interval
        lifecycle = self.monitor.lifecycle
        severity = SEVERITIES[lifecycle.severity] if lifecycle.is_open else None
        return SeriesPoint(t, surprise, tuple(events), severity)


def run_series(
    points: Iterable[tuple[datetime, float]], config: DetectorConfig
) -> list[SeriesPoint]:
    detector = SeriesDetector(config)
    return [detector.update(t, x) for t, x in points]
