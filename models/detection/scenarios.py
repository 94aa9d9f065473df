"""Crisis scenarios: synthetic negative waves injected into real background volumes.

A real mention-volume series (for instance a NAB Twitter file, 5-minute counts) stands
for a brand's background. A fixed share of it is negative (drawn binomially, seeded).
Onto that negative volume we add one wave at a time, of one of several shapes, and run
`BrandMonitor` itself, fed with counts (`add_counts`). We report, per shape, how many
waves were caught and how late (minutes from the start of the wave's first interval to
the end of the interval that raised the event), and on the clean background how many
alerts (incidents opened or escalated) a brand gets per week. The real backgrounds have
real events of their own (the NAB files are labelled), so not all of those are false.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from models.detection.config import DetectorConfig
from models.detection.monitor import BrandMonitor

__all__ = ["WaveShape", "SHAPES", "wave_profile", "run_scenarios"]

NEGATIVE_SHARE = 0.15  # share of the background that is negative
WARMUP_DAYS = 4.0  # no wave starts before this: the detector must have learnt the brand
REACH_PER_POST = 300  # followers per negative post, background and wave alike


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


def _feed(
    monitor: BrandMonitor, moment: datetime, negative: int, other: int, interval: timedelta
) -> list[dict[str, object]]:
    monitor.add_counts(negative=negative, neutral=other, reach_negative=negative * REACH_PER_POST)
    return monitor.close_interval(moment, moment + interval)


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
    """Detection rate and delay per wave shape; incidents per brand-week on clean data.

    `backgrounds` maps a brand (file) name to its timestamps and total volumes per interval;
    the interval is `config.interval_seconds`. A wave counts as detected by the first
    incident event during it: `opened`, or `updated` when an incident was already open
    (the wave then reaches people as an update of that incident).
    """
    rng = np.random.default_rng(seed)
    interval = timedelta(seconds=config.interval_seconds)
    warm = int(WARMUP_DAYS * 86400 / config.interval_seconds)
    delays: dict[str, list[float]] = {shape.name: [] for shape in shapes}
    as_update: dict[str, int] = dict.fromkeys(delays, 0)
    waves: dict[str, int] = dict.fromkeys(delays, 0)
    by_brand: dict[str, dict[str, list[int]]] = {shape.name: {} for shape in shapes}
    clean_runs: dict[str, dict[str, float]] = {}
    for name in sorted(backgrounds):
        timestamps, volumes = backgrounds[name]
        total = np.asarray(volumes, dtype=np.int64)
        for scale in sorted({shape.background_scale for shape in shapes}):
            scaled = rng.binomial(total, scale) if scale < 1 else total
            negative = rng.binomial(scaled, NEGATIVE_SHARE)
            other = scaled - negative
            typical = float(np.median(negative[warm:])) if len(negative) > warm else 0.0
            planned = []  # (shape, start row, extra negative posts per interval)
            for shape in (s for s in shapes if s.background_scale == scale):
                peak = max(shape.peak_factor * typical, shape.min_peak)
                wave = np.array(wave_profile(shape, peak, config.interval_seconds))
                for start in _wave_starts(timestamps, shape, rng, len(wave)):
                    planned.append((shape, start, rng.poisson(wave)))
            snapshots: dict[int, BrandMonitor] = {}
            starts = {start for _, start, _ in planned}
            monitor = BrandMonitor(name, name, config)
            opened = escalated = updates = 0
            for row, moment in enumerate(timestamps):
                if row in starts:
                    snapshots[row] = copy.deepcopy(monitor)
                for event in _feed(monitor, moment, int(negative[row]), int(other[row]),
                                   interval):
                    if row >= warm:
                        opened += event["event"] == "opened"
                        escalated += bool(event["escalated"])
                        updates += event["event"] == "updated" and not event["escalated"]
            weeks = (len(timestamps) - warm) * config.interval_seconds / (7 * 86400)
            label = name if scale == 1 else f"{name} (x{scale:g})"
            clean_runs[label] = {
                "weeks": round(weeks, 2),
                "incidents_opened": opened,
                "escalations": escalated,
                "alerts_per_week": round((opened + escalated) / weeks, 2) if weeks else 0.0,
                "other_updates": updates,  # growth / fresh surge of an incident already open
            }
            for shape, start, extra in planned:
                waves[shape.name] += 1
                tally = by_brand[shape.name].setdefault(label, [0, 0])
                tally[1] += 1
                replay = copy.deepcopy(snapshots[start])
                was_open = replay.lifecycle.is_open
                for offset, added in enumerate(extra):
                    row = start + offset
                    events = _feed(replay, timestamps[row], int(negative[row] + added),
                                   int(other[row]), interval)
                    if any(e["event"] in ("opened", "updated") for e in events):
                        delays[shape.name].append((offset + 1) * config.interval_seconds / 60)
                        as_update[shape.name] += was_open
                        tally[0] += 1
                        break
    per_shape: dict[str, dict[str, object]] = {}
    for shape in shapes:
        found = delays[shape.name]
        count = waves[shape.name]
        per_shape[shape.name] = {
            "waves": count,
            "detected": len(found),
            "detection_rate": round(len(found) / count, 3) if count else 0.0,
            "detected_as_update_of_open_incident": as_update[shape.name],
            "median_delay_minutes": round(statistics.median(found), 1) if found else None,
            "max_delay_minutes": round(max(found), 1) if found else None,
            "detected_per_brand": {
                brand: f"{hit}/{total}" for brand, (hit, total) in by_brand[shape.name].items()
            },
        }
    weekly = [row["alerts_per_week"] for row in clean_runs.values()]
    return {
        "shapes": per_shape,
        "background_without_waves": clean_runs,
        "alerts_per_brand_week": round(statistics.mean(weekly), 2) if weekly else 0.0,
        "negative_share": NEGATIVE_SHARE,
        "interval_seconds": config.interval_seconds,
        "window_minutes": config.window_minutes,
    }
