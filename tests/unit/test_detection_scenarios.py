"""Crisis scenarios on a constructed background: waves are found, quickly, without noise."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np

from models.detection import DetectorConfig
from models.detection.scenarios import SHAPES, WaveShape, run_scenarios, wave_profile

CONFIG = DetectorConfig(interval_seconds=300)


def test_wave_profile_ramps_holds_and_decays() -> None:
    shape = WaveShape("t", ramp_minutes=15, hold_minutes=10, decay_minutes=10, peak_factor=1,
                      min_peak=1)
    values = wave_profile(shape, 100.0, 300)
    assert values[:3] == [25.0, 50.0, 75.0]  # three 5-minute steps up to the peak
    assert values[3] == values[4] == values[5] == 100.0  # the peak, then the decay starts
    assert math.isclose(values[7], 100 * math.exp(-1.0))  # 10 minutes into the decay
    assert len(values) == (15 + 10 + 40) // 5


def test_scenarios_on_a_calm_rhythmic_background() -> None:
    rng = np.random.default_rng(3)
    n = 26 * 288  # 26 days of 5-minute counts with a daily rhythm
    hours = np.arange(n) / 12.0
    volumes = rng.poisson(100 + 80 * np.sin(2 * math.pi * hours / 24)).tolist()
    stamps = [datetime(2026, 1, 5) + timedelta(minutes=5 * i) for i in range(n)]
    shapes = [s for s in SHAPES if s.name in ("sudden_leak", "small_brand")]
    report = run_scenarios({"calm": (stamps, volumes)}, CONFIG, shapes=shapes)
    leak = report["shapes"]["sudden_leak"]
    assert leak["waves"] == 3 and leak["detected"] == 3
    assert leak["max_delay_minutes"] <= 15  # within three 5-minute intervals
    assert report["shapes"]["small_brand"]["detected"] == 3
    assert report["background_without_waves"]["calm"]["incidents_opened"] == 0
