"""Crisis scenarios: synthetic negative waves injected into real background volumes.

A real mention-volume series (for instance a NAB Twitter file, 5-minute counts) stands
for a brand's background. A fixed share of it is negative (drawn binomially, seeded).
Onto that negative volume we add one wave at a time, of one of several shapes, and run
the same detector that `BrandMonitor` runs: a `SeriesDetector` on the negative posts of
the evidence window. We report, per shape, how many waves were caught and how late
(minutes from the wave's first extra post to the alert), and on the clean background
how many false alerts a brand would get per week.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from models.detection.config import DetectorConfig
from models.detection.series import SeriesDetector

__all__ = ["WaveShape", "SHAPES", "wave_profile", "run_scenarios"]

NEGATIVE_SHARE = 0.15  # share of the background that is negative
WARMUP_DAYS = 4.0  # no wave starts before this: the detector must have learnt the brand


@dataclass(frozen=True)
class WaveShape:
    """Extra negative posts per interval: ramp up, hold the peak, decay exponentially."""

    name: str
    ramp_minutes: float
    hold_minutes: float
    decay_minutes: float
    peak_factor: float  # peak = max(peak_factor x typical negative count, min_peak)
    min_peak: float
    background_scale: float = 1.0  # < 1: a smaller brand (the background is thinned)
    weekend: bool = False  # start on a Saturday or Sunday night


SHAPES: tuple[WaveShape, ...] = (
    WaveShape("sudden_leak", ramp_minutes=5, hold_minutes=30, decay_minutes=90,
              peak_factor=10, min_peak=40),
    WaveShape("slow_build", ramp_minutes=360, hold_minutes=60, decay_minutes=180,
              peak_factor=6, min_peak=30),
    WaveShape("weekend", ramp_minutes=15, hold_minutes=30, decay_minutes=90,
              peak_factor=8, min_peak=30, weekend=True),
    WaveShape("small_brand", ramp_minutes=10, hold_minutes=30, decay_minutes=60,
              peak_factor=20, min_peak=20, background_scale=0.03),
)


def wave_profile(shape: WaveShape, peak: float, interval_seconds: float) -> list[float]:
    """Extra negative posts for each interval of the wave, from its first interval on."""
    step = interval_seconds / 60.0
    values = []
    minute = 0.0
    end = shape.ramp_minutes + shape.hold_minutes + 4 * shape.decay_minutes
    while minute < end:
        if minute < shape.ramp_minutes:
            level = peak * (minute + step) / (shape.ramp_minutes + step)
        elif minute < shape.ramp_minutes + shape.hold_minutes:
            level = peak
        else:
            since = minute - shape.ramp_minutes - shape.hold_minutes
            level = peak * math.exp(-since / shape.decay_minutes)
        values.append(level)
        minute += step
    return values


def _window_sums(values: np.ndarray, width: int) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    sums = cumulative[width:] - cumulative[:-width]
    return np.concatenate([cumulative[1:width], sums])


def _alerts(
    timestamps: Sequence[datetime], negative: np.ndarray, config: DetectorConfig
) -> list[int]:
    detector = SeriesDetector(config)
    window = _window_sums(negative, config.window_intervals)
    return [
        i
        for i, (t, x) in enumerate(zip(timestamps, window, strict=True))
        if detector.update(t, float(x)).alert
    ]


def _wave_starts(
    timestamps: Sequence[datetime], shape: WaveShape, rng: np.random.Generator, wave_rows: int
) -> list[int]:
    """One start a week after warm-up, at a random time (a weekend night for `weekend`)."""
    first, last = timestamps[0], timestamps[-1]
    starts = []
    week_start = first + timedelta(days=WARMUP_DAYS)
    while week_start + timedelta(days=7) <= last:
        if shape.weekend:
            days_to_saturday = (5 - week_start.weekday()) % 7
            moment = week_start.replace(hour=0, minute=0, second=0) + timedelta(
                days=days_to_saturday + int(rng.integers(0, 2)), hours=float(rng.uniform(0, 6))
            )
        else:
            moment = week_start + timedelta(hours=float(rng.uniform(0, 7 * 24)))
        index = int(np.searchsorted(np.array(timestamps, dtype="datetime64[us]"),
                                    np.datetime64(moment.replace(tzinfo=None))))
        if index + wave_rows < len(timestamps):
            starts.append(index)
        week_start += timedelta(days=7)
    return starts


def run_scenarios(
    backgrounds: dict[str, tuple[Sequence[datetime], Sequence[float]]],
    config: DetectorConfig,
    shapes: Sequence[WaveShape] = SHAPES,
    seed: int = 7,
) -> dict[str, object]:
    """Detection rate and delay per wave shape, false alerts per brand-week on clean data.

    `backgrounds` maps a brand (file) name to its timestamps and total volumes per interval;
    the interval is `config.interval_seconds`.
    """
    rng = np.random.default_rng(seed)
    per_shape: dict[str, dict[str, object]] = {}
    false_alerts: dict[str, dict[str, float]] = {}
    delays_by_shape: dict[str, list[float]] = {shape.name: [] for shape in shapes}
    waves_by_shape: dict[str, int] = {shape.name: 0 for shape in shapes}
    for name in sorted(backgrounds):
        timestamps, volumes = backgrounds[name]
        total = np.asarray(volumes, dtype=float)
        for scale in sorted({shape.background_scale for shape in shapes}):
            scaled = rng.binomial(total.astype(np.int64), min(1.0, scale)) if scale < 1 else total
            negative = rng.binomial(scaled.astype(np.int64), NEGATIVE_SHARE).astype(float)
            warm = int(WARMUP_DAYS * 86400 / config.interval_seconds)
            clean = [i for i in _alerts(timestamps, negative, config) if i >= warm]
            weeks = (len(timestamps) - warm) * config.interval_seconds / (7 * 86400)
            label = name if scale == 1 else f"{name} (x{scale:g})"
            false_alerts[label] = {
                "alerts": len(clean),
                "weeks": round(weeks, 2),
                "per_week": round(len(clean) / weeks, 2) if weeks > 0 else 0.0,
            }
            typical = float(np.median(negative[warm:])) if len(negative) > warm else 0.0
            for shape in (s for s in shapes if s.background_scale == scale):
                peak = max(shape.peak_factor * typical, shape.min_peak)
                wave = np.array(wave_profile(shape, peak, config.interval_seconds))
                for start in _wave_starts(timestamps, shape, rng, len(wave)):
                    injected = negative.copy()
                    extra = rng.poisson(wave).astype(float)
                    injected[start : start + len(wave)] += extra
                    alerts = [
                        i
                        for i in _alerts(timestamps, injected, config)
                        if start <= i < start + len(wave)
                    ]
                    waves_by_shape[shape.name] += 1
                    if alerts:
                        delay = (alerts[0] - start + 1) * config.interval_seconds / 60.0
                        delays_by_shape[shape.name].append(delay)
    for shape in shapes:
        delays = delays_by_shape[shape.name]
        waves = waves_by_shape[shape.name]
        per_shape[shape.name] = {
            "waves": waves,
            "detected": len(delays),
            "detection_rate": round(len(delays) / waves, 3) if waves else 0.0,
            "median_delay_minutes": round(statistics.median(delays), 1) if delays else None,
            "max_delay_minutes": round(max(delays), 1) if delays else None,
        }
    weekly = [row["per_week"] for row in false_alerts.values()]
    return {
        "shapes": per_shape,
        "false_alerts": false_alerts,
        "false_alerts_per_brand_week": round(statistics.mean(weekly), 2) if weekly else 0.0,
        "negative_share": NEGATIVE_SHARE,
        "interval_seconds": config.interval_seconds,
        "window_minutes": config.window_minutes,
    }
