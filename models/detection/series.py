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

A series that is not a count (CPU %, a latency, a price, a temperature) has no natural
unit, while the detector's model of noise is one of counts: log(count + 3), a Poisson
floor on the spread, `min_negative` posts. Read in its own units, a price between 0.02 and
3 never leaves that floor (a tenfold jump scores z < 2). `series_unit` gives such a series
a unit (1 % of its typical level in the warm-up rows), so that it is judged as a count of
those units: the count-specific parts then weigh as little as they do on a large brand.
Count series (whole numbers, as every brand's mentions are) keep the unit 1: nothing
changes for them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from models.detection.config import DetectorConfig
from models.detection.lifecycle import SEVERITIES
from models.detection.monitor import BrandMonitor, pages_someone
from models.detection.spike import Surprise

__all__ = [
    "MEASUREMENT_UNITS", "SeriesDetector", "SeriesPoint", "run_series", "series_config",
    "series_unit",
]

# A measurement series is read in units of 1/MEASUREMENT_UNITS of its typical level: its
# typical interval then counts 100 units, where the offset of 3 and the Poisson floor weigh
# little (RESULTS.md: 30 or 1000 units change the nab-other score by a few points only).
MEASUREMENT_UNITS = 100.0


def series_config(config: DetectorConfig, interval_seconds: int) -> DetectorConfig:
    """`config` for a series of `interval_seconds` rows, each row judged on its own."""
    return replace(
        config,
        interval_seconds=interval_seconds,
        window_minutes=max(1, round(interval_seconds / 60)),
    )


def series_unit(warmup: Sequence[float]) -> float:
    """The value of one counted item in a series' own units, from its warm-up values.

    1 for a count series (every warm-up value a whole number); for a measurement, the median
    of its non-zero warm-up values divided by MEASUREMENT_UNITS (1 when all are zero).

    >>> series_unit([12, 0, 40, 7])
    1.0
    >>> series_unit([0.12, 0.10, 0.0, 0.14])
    0.0012
    """
    if all(float(value).is_integer() for value in warmup):
        return 1.0
    typical = [abs(value) for value in warmup if value != 0]
    if not typical:
        return 1.0
    return statistics.median(typical) / MEASUREMENT_UNITS


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

    def __init__(self, config: DetectorConfig, brand: str = "series", unit: float = 1.0) -> None:
        if not (unit > 0 and unit < float("inf")):
            raise ValueError(f"unit must be a positive number, got {unit!r}")
        self.config = series_config(config, config.interval_seconds)
        self.unit = float(unit)  # the series' value of one counted item (series_unit)
        self.monitor = BrandMonitor(brand, brand, self.config)
        self._step = timedelta(seconds=self.config.interval_seconds)

    def update(self, t: datetime, x: float) -> SeriesPoint:
        self.monitor.add_counts(negative=max(0.0, float(x)) / self.unit)
        events = self.monitor.close_interval(t, t + self._step)
        surprise = self.monitor.last_surprise
        assert surprise is not None  # set by every close_interval
        lifecycle = self.monitor.lifecycle
        severity = SEVERITIES[lifecycle.severity] if lifecycle.is_open else None
        return SeriesPoint(t, surprise, tuple(events), severity)


def run_series(
    points: Iterable[tuple[datetime, float]], config: DetectorConfig, unit: float = 1.0
) -> list[SeriesPoint]:
    """Judge each (t, value) in order; `unit` as in `SeriesDetector` (surprises are then in
    those units)."""
    detector = SeriesDetector(config, unit=unit)
    return [detector.update(t, x) for t, x in points]
