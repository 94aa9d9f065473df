"""The one protocol Vigie's online detectors speak, after River's `AnomalyDetector`.

A detector sees one value per interval: `score_one(t, x)` judges `x` (the count of the
interval starting at `t`) without learning it, then `learn_one(t, x)` folds it in, so a
judgement at `t` never uses anything from `t` on. What `score_one` returns depends on the
detector (`VolumeScore`, `Surprise`); each has a `z` (how many spreads above normal).
Unlike River, a value comes with its time: the expectation has daily and weekly rhythms.

`VolumeDetector` (volume.py) and `SpikeDetector` (spike.py) satisfy it; `BrandMonitor`
and `SeriesDetector` are built on them, with incidents on top, and are not detectors of
one value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["OnlineDetector"]

ScoreT_co = TypeVar("ScoreT_co", covariant=True)


@runtime_checkable
class OnlineDetector(Protocol[ScoreT_co]):
    """Judges a count, then learns it; one call each per interval, in time order.

    >>> from datetime import UTC, datetime
    >>> from models.detection import VolumeDetector
    >>> detector: OnlineDetector = VolumeDetector(interval_seconds=3600)
    >>> isinstance(detector, OnlineDetector)
    True
    >>> t = datetime(2026, 11, 2, tzinfo=UTC)
    >>> detector.learn_one(t, 20)
    >>> detector.score_one(t, 20).z
    0.0
    """

    def score_one(self, t: datetime, x: float) -> ScoreT_co:
        """How surprising count `x` of the interval starting at `t` is (learns nothing)."""
        ...

    def learn_one(self, t: datetime, x: float) -> None:
        """Fold count `x` of the interval starting at `t` into what is normal."""
        ...
