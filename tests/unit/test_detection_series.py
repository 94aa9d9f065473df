"""The core detector on constructed count series (5-minute intervals, seeded noise)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pytest

from models.detection import DetectorConfig, SeriesDetector, run_series
from models.detection.lifecycle import IncidentLifecycle

STEP = timedelta(minutes=5)
PER_DAY = 288
START = datetime(2026, 1, 5)  # a Monday
CONFIG = DetectorConfig(interval_seconds=300)


def times(n: int, start: datetime = START) -> list[datetime]:
    return [start + i * STEP for i in range(n)]


def seasonal_mean(n: int, low: float = 20.0, high: float = 200.0) -> np.ndarray:
    hours = np.arange(n) * 5 / 60.0
    return low + (high - low) * 0.5 * (1 - np.cos(2 * math.pi * hours / 24.0))


def alerts_after(points, first: int) -> list[int]:
    return [i for i, p in enumerate(points) if p.alert and i >= first]


def test_flat_noisy_series_never_alerts() -> None:
    values = np.random.default_rng(1).poisson(50, 7 * PER_DAY)
    points = run_series(zip(times(len(values)), values.tolist(), strict=True), CONFIG)
    assert alerts_after(points, 0) == []
    assert 40 < points[-1].surprise.volume.expected < 60


def test_daily_rhythm_is_learnt_and_not_alerted() -> None:
    values = np.random.default_rng(2).poisson(seasonal_mean(14 * PER_DAY))
    points = run_series(zip(times(len(values)), values.tolist(), strict=True), CONFIG)
    assert alerts_after(points, 0) == []
    # After two weeks the expectation follows the rhythm: high at noon, low at midnight.
    noon, midnight = 13 * PER_DAY + 144, 13 * PER_DAY
    assert points[noon].surprise.volume.expected > 4 * points[midnight].surprise.volume.expected


def test_spike_opens_one_incident_at_once_without_dragging_the_expectation() -> None:
    n = 12 * PER_DAY
    means = seasonal_mean(n)
    spike = 10 * PER_DAY + 100
    means[spike : spike + 6] *= 12  # half an hour at twelve times the usual volume
    values = np.random.default_rng(3).poisson(means)
    points = run_series(zip(times(n), values.tolist(), strict=True), CONFIG)
    opened = [i for i, p in enumerate(points) if "opened" in p.kinds]
    assert opened == [spike]
    assert points[spike].surprise.score > 0.999
    # The expectation one day later, at the same hour, is not pulled up by the spike.
    before = points[spike - PER_DAY].surprise.volume.expected
    after = points[spike + PER_DAY].surprise.volume.expected
    assert after < 1.25 * before


def test_slow_rise_is_followed_not_alerted() -> None:
    n = 10 * PER_DAY
    means = 50 * np.exp(np.log(3) * np.arange(n) / n)  # the volume triples over ten days
    values = np.random.default_rng(4).poisson(means)
    points = run_series(zip(times(n), values.tolist(), strict=True), CONFIG)
    assert alerts_after(points, 0) == []
    assert points[-1].surprise.volume.expected == pytest.approx(150, rel=0.2)


def test_sparse_counts_zero_to_three_is_not_a_crisis_three_to_three_hundred_is() -> None:
    n = 5 * PER_DAY
    values = np.random.default_rng(5).poisson(0.3, n).tolist()
    values[3 * PER_DAY] = 3
    values[4 * PER_DAY] = 300
    points = run_series(zip(times(n), values, strict=True), CONFIG)
    assert alerts_after(points, 0) == [4 * PER_DAY]


def test_gap_in_timestamps_is_not_an_incident() -> None:
    values = np.random.default_rng(6).poisson(seasonal_mean(8 * PER_DAY)).tolist()
    stamps = times(len(values))
    gap = 5 * PER_DAY
    stamps = stamps[:gap] + [t + timedelta(hours=7) for t in stamps[gap:]]
    values = values[:gap] + values[gap + 84 :] + [values[-1]] * 84  # same rhythm, shifted
    stamps = stamps[: len(values)]
    points = run_series(zip(stamps, values, strict=True), CONFIG)
    assert alerts_after(points, 0) == []


def test_one_wave_with_a_dip_is_one_incident_resolved_once() -> None:
    config = replace(CONFIG, quiet_minutes=120)
    n = 8 * PER_DAY
    means = np.full(n, 40.0)
    wave = 6 * PER_DAY
    means[wave : wave + 6] = 600  # 30 minutes of wave
    means[wave + 10 : wave + 16] = 700  # a 20-minute dip, then the wave comes back
    values = np.random.default_rng(7).poisson(means)
    points = run_series(zip(times(n), values.tolist(), strict=True), config)
    events = [(i, kind) for i, p in enumerate(points) for kind in p.kinds
              if kind in ("opened", "resolved")]
    assert [e for _, e in events] == ["opened", "resolved"]
    # Calm in the dip and after the wave: it subsided, was active again, subsided again.
    statuses = [(i - wave, e["status"]) for i, p in enumerate(points) for e in p.events]
    changes = [s for k, s in enumerate(statuses) if k == 0 or s[1] != statuses[k - 1][1]]
    assert changes == [(0, "active"), (6, "subsided"), (10, "active"), (16, "subsided"),
                       (config.quiet_intervals, "resolved")]
    assert [i for i, p in enumerate(points) if p.alert] == [wave]  # one page
    opened_at, resolved_at = events[0][0], events[1][0]
    assert opened_at == wave
    # The quiet period runs from the opening: resolved at the first calm interval two
    # hours after it (it was two calm hours after the wave before the quiet period).
    assert resolved_at == wave + config.quiet_intervals


def test_lifecycle_escalates_only_upwards() -> None:
    lifecycle = IncidentLifecycle(quiet_intervals=4)
    assert lifecycle.step(True, True, 0).event == "opened"
    step = lifecycle.step(True, True, 2)
    assert (step.event, step.escalated) == ("updated", True)
    assert lifecycle.step(True, True, 1).event is None  # lower severity: no news
    # Calm, but in the quiet period: subsided, not resolved.
    assert lifecycle.step(False, False, 0).event == "subsided"
    assert lifecycle.step(False, False, 0).event == "resolved"


def test_quiet_period_holds_one_page_per_period_and_waits_for_calm() -> None:
    """A trigger inside the quiet period pages nobody; a wave still going on when it
    ends keeps the incident open until the first calm interval."""
    lifecycle = IncidentLifecycle(quiet_intervals=3)
    steps = [lifecycle.step(trigger, active, 0) for trigger, active in [
        (True, True), (False, False), (True, True), (True, True), (False, True),
        (False, False), (True, True)]]
    assert [s.event for s in steps] == [
        "opened", "subsided", "updated", None, None, "resolved", "opened"]
    assert steps[2].resumed and not steps[2].escalated  # active again, no page


def test_series_detector_is_causal() -> None:
    """Changing the future never changes a decision already made."""
    values = np.random.default_rng(8).poisson(seasonal_mean(3 * PER_DAY)).tolist()
    cut = 2 * PER_DAY
    altered = values[:cut] + [v * 50 for v in values[cut:]]
    first = run_series(zip(times(len(values)), values, strict=True), CONFIG)
    second = run_series(zip(times(len(values)), altered, strict=True), CONFIG)
    assert [p.surprise.score for p in first[:cut]] == [p.surprise.score for p in second[:cut]]


def test_config_overrides_name_the_bad_key() -> None:
    config = DetectorConfig().with_overrides({"min_negative": 25, "sensitivity": 2})
    assert config.min_negative == 25 and config.threshold("open_score") == 2.0
    with pytest.raises(ValueError, match="'min_negatives'"):
        DetectorConfig().with_overrides({"min_negatives": 3})
    with pytest.raises(ValueError, match="'sensitivity'"):
        DetectorConfig().with_overrides({"sensitivity": "high"})
    with pytest.raises(ValueError, match="sensitivity"):
        DetectorConfig().with_overrides({"sensitivity": 0})


def test_detector_state_round_trip_gives_identical_decisions() -> None:
    values = np.random.default_rng(9).poisson(seasonal_mean(3 * PER_DAY)).tolist()
    stamps = times(len(values))
    whole = SeriesDetector(CONFIG)
    reference = [whole.update(t, v).surprise.score for t, v in zip(stamps, values, strict=True)]
    first = SeriesDetector(CONFIG)
    for t, v in zip(stamps[:500], values[:500], strict=True):
        first.update(t, v)
    from models.detection import BrandMonitor

    resumed = SeriesDetector(CONFIG)
    resumed.monitor = BrandMonitor.from_state(json.loads(json.dumps(first.monitor.to_state())),
                                              resumed.config)
    rest = [resumed.update(t, v).surprise.score for t, v in zip(stamps[500:], values[500:],
                                                                 strict=True)]
    assert rest == pytest.approx(reference[500:], rel=1e-12)


@pytest.mark.parametrize("module", ["lifecycle", "monitor", "nab", "terms"])
def test_docstring_examples_of_the_detector_run(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"models.detection.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_series_unit_is_one_for_counts_and_a_hundredth_of_the_level_for_measurements() -> None:
    from models.detection.series import series_unit

    assert series_unit([0, 3, 12, 7]) == 1.0  # a brand's counts: unchanged
    assert series_unit([0.0, 0.0]) == 1.0  # nothing to measure a level by
    assert series_unit([0.2, 0.0, 0.1, 0.3]) == pytest.approx(0.002)  # median of non-zeros


def test_a_count_series_judged_in_unit_one_is_unchanged_and_bad_units_are_refused() -> None:
    values = np.random.default_rng(4).poisson(seasonal_mean(3 * PER_DAY))
    values[2 * PER_DAY + 10] = 2000
    pairs = list(zip(times(len(values)), values.tolist(), strict=True))
    default = [(p.alert, p.surprise.z) for p in run_series(pairs, CONFIG)]
    assert default == [(p.alert, p.surprise.z) for p in run_series(pairs, CONFIG, unit=1.0)]
    assert default[2 * PER_DAY + 10][0]  # the spike pages
    with pytest.raises(ValueError, match="unit"):
        SeriesDetector(CONFIG, unit=0.0)
