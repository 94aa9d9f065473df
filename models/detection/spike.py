"""The core spike detector: expectation + calibrated surprise + the decision to trigger.

`SpikeDetector` is what both `vigie detect series` (on a plain count per interval) and
`BrandMonitor` (on the negative posts of the evidence window) run. It speaks River's
language: `score_one(t, x)` judges the value without learning it, `learn_one(t, x, s)`
learns it afterwards, so a decision at `t` never uses anything after `t`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.detection.calibration import TailCalibrator
from models.detection.config import DetectorConfig
from models.detection.volume import VolumeDetector, VolumeScore

__all__ = ["SpikeDetector", "Surprise"]


@dataclass(frozen=True)
class Surprise:
    volume: VolumeScore  # observed, expected, band, z
    rarity: float  # -log10 of the share of recent intervals at least this surprising
    trigger: bool  # surprising enough to open an incident
    active: bool  # still elevated: keeps an open incident alive

    @property
    def z(self) -> float:
        return self.volume.z

    @property
    def score(self) -> float:
        """How unlikely the value is, in [0, 1]: 1 - (calibrated tail probability)."""
        return max(0.0, min(1.0, 1.0 - 10.0 ** (-self.rarity)))


class SpikeDetector:
    """Says whether the count of an interval opens an incident (`Surprise.trigger`).

    >>> from datetime import UTC, datetime, timedelta
    >>> from models.detection.config import DetectorConfig
    >>> detector = SpikeDetector(DetectorConfig(interval_seconds=3600))
    >>> start = datetime(2026, 11, 2, tzinfo=UTC)
    >>> for hour in range(24 * 7):  # a quiet week: 20 to 24 negative posts an hour
    ...     detector.learn_one(start + timedelta(hours=hour), 20 + hour % 5)
    >>> after = start + timedelta(hours=24 * 7)
    >>> detector.score_one(after, 23).trigger, detector.score_one(after, 200).trigger
    (False, True)
    """

    def __init__(self, config: DetectorConfig, interval_seconds: float | None = None) -> None:
        self.config = config
        self.interval_seconds = float(interval_seconds or config.interval_seconds)
        self.volume = VolumeDetector(self.interval_seconds, config.volume)
        per_day = 86400.0 / self.interval_seconds
        self.calibrator = TailCalibrator(
            half_life_intervals=config.tail_half_life_days * per_day,
            prior_weight=config.tail_prior_days * per_day,
        )

    def score_one(self, t: datetime, x: float) -> Surprise:
        config = self.config
        volume = self.volume.score_one(t, x)
        rarity = self.calibrator.rarity(volume.z)
        trigger = (
            self.volume.seen > 0  # nothing learnt yet: no expectation to be surprised by
            and volume.z >= config.threshold("open_score")
            and rarity >= config.threshold("open_rarity")
            and volume.observed >= config.min_negative
            and volume.observed >= config.min_ratio * volume.expected
        )
        active = volume.z >= config.threshold("close_score")
        return Surprise(volume=volume, rarity=rarity, trigger=trigger, active=active)

    def learn_one(self, t: datetime, x: float, surprise: Surprise | None = None) -> None:
        surprise = surprise or self.score_one(t, x)
        self.volume.learn_one(t, x)
        self.calibrator.learn(surprise.z)

    def to_state(self) -> dict[str, object]:
        return {"volume": self.volume.to_state(), "tail": self.calibrator.to_state()}

    @classmethod
    def from_state(
        cls, state: dict[str, object], config: DetectorConfig, interval_seconds: float | None = None
    ) -> SpikeDetector:
        detector = cls(config, interval_seconds)
        detector.volume = VolumeDetector.from_state(
            state["volume"],  # type: ignore[arg-type]
            detector.interval_seconds,
            config.volume,
        )
        detector.calibrator.load_state(state["tail"])  # type: ignore[arg-type]
        return detector
