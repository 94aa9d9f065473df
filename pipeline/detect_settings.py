"""Detector settings (`VIGIE_DETECT_*`), shared by the detect agent and `vigie detect`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from models.detection import DetectorConfig
from pipeline.settings import env_float, env_int, env_str

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionSettings:
    """Detector settings shared by every brand (a brand's `thresholds:` may override)."""

    interval_seconds: int = 60
    window_minutes: int = 10
    sensitivity: float = 1.0
    min_negative: int = 10
    quiet_minutes: float = 2880.0
    allowed_lateness_seconds: int = 120
    # How often each score worker reports how far it has read (the detector's clock ticks).
    tick_seconds: float = 5.0

    @classmethod
    def from_env(cls) -> DetectionSettings:
        if env_str("VIGIE_DETECT_CLOCK", ""):
            # One clock model now serves live streams and replays (models/detection/clock.py).
            log.warning("VIGIE_DETECT_CLOCK is ignored: intervals follow the watermark of "
                        "the posts' own times, on live streams and replays alike")
        return cls(
            interval_seconds=env_int("VIGIE_DETECT_INTERVAL_SECONDS", cls.interval_seconds, 1),
            window_minutes=env_int("VIGIE_DETECT_WINDOW_MINUTES", cls.window_minutes, 1),
            sensitivity=env_float("VIGIE_DETECT_SENSITIVITY", cls.sensitivity, 0.01),
            min_negative=env_int("VIGIE_DETECT_MIN_NEGATIVE", cls.min_negative, 0),
            quiet_minutes=env_float("VIGIE_DETECT_QUIET_MINUTES", cls.quiet_minutes, 1.0),
            allowed_lateness_seconds=env_int(
                "VIGIE_DETECT_ALLOWED_LATENESS_SECONDS", cls.allowed_lateness_seconds, 0
            ),
            tick_seconds=env_float("VIGIE_DETECT_TICK_SECONDS", cls.tick_seconds, 0.5),
        )

    def to_config(self) -> DetectorConfig:
        return DetectorConfig(
            interval_seconds=self.interval_seconds,
            window_minutes=self.window_minutes,
            sensitivity=self.sensitivity,
            min_negative=self.min_negative,
            quiet_minutes=self.quiet_minutes,
        )
