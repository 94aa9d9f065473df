"""Spike detection: per-brand online detection of negative waves, and its benchmarks.

Pure and framework-free (numpy-free too): nothing here imports Kafka, Faust or the
pipeline. The calling convention of the `detect` agent::

    from models.detection import BrandMonitor, DetectorConfig

    config = DetectorConfig(interval_seconds=60).with_overrides(brand_thresholds)
    monitor = BrandMonitor(brand="acme", brand_name="ACME", config=config)
    monitor.add_mention(mention)            # a Mention record of the open interval
    events = monitor.judge_open(start, at)  # early firing on the open interval so far
    events = monitor.close_interval(start, end)  # zero mentions allowed; incident events
    state = monitor.to_state()              # JSON-serialisable (a Faust table value)
    monitor = BrandMonitor.from_state(state, config)  # resumes exactly

`add_mention` raises ValueError for a record it cannot use (nothing is counted then).
`close_interval` must be called once per interval, in order, including intervals with no
mention (an interval without posts is a zero, not a gap); it returns a list of dicts that
follow the "Incident event" record of docs/records.md.

A brand's `thresholds:` mapping in the watchlist may override these keys (ValueError
names any other): interval_seconds, window_minutes, sensitivity, open_score, open_rarity,
close_score, warning_score, critical_score, min_negative, min_ratio, quiet_minutes,
critical_reach, alarming_share (see `DetectorConfig`).

Layers, each usable alone:
- `OnlineDetector` (protocol.py): the `score_one` / `learn_one` protocol the detectors of
  one count series satisfy (`VolumeDetector`, `SpikeDetector`).
- `VolumeDetector` (volume.py): the robust online expectation of a count series
  (level, daily and weekly rhythm, spread), River-style `score_one` / `learn_one`.
- `TailCalibrator` (calibration.py): how rare a surprise is for this series.
- `SpikeDetector` (spike.py): the two together, plus the decision to trigger.
- `IncidentLifecycle` (lifecycle.py): opened / updated / resolved with hysteresis.
- `StorylineSet` (storylines.py): the stories a wave is made of, grouped as posts arrive.
- `SeriesDetector`, `run_series` (series.py): the detector on a plain count series
  (`vigie detect series`, NAB); `BrandMonitor` (monitor.py): the detector on mentions.
- `nab.py`: the NAB scoring rules; `scenarios.py`: synthetic crisis waves.
- `clock.py`: event time: per-partition progress (`SourceProgress`), the watermark that
  is safe across partitions (`Watermark`), and one brand's intervals (`BrandClock`):
  which may close, where a mention of a given time is counted.
"""

from models.detection.calibration import TailCalibrator
from models.detection.clock import BrandClock, SourceProgress, Watermark, interval_start
from models.detection.config import OVERRIDABLE_KEYS, DetectorConfig
from models.detection.lifecycle import SEVERITIES, IncidentLifecycle, open_by_severity
from models.detection.monitor import BrandMonitor, HeldTally
from models.detection.protocol import OnlineDetector
from models.detection.series import SeriesDetector, SeriesPoint, run_series
from models.detection.spike import SpikeDetector, Surprise
from models.detection.volume import VolumeDetector, VolumeParams, VolumeScore

__all__ = [
    "BrandClock",
    "BrandMonitor",
    "DetectorConfig",
    "HeldTally",
    "IncidentLifecycle",
    "OVERRIDABLE_KEYS",
    "OnlineDetector",
    "SEVERITIES",
    "SeriesDetector",
    "SeriesPoint",
    "SourceProgress",
    "SpikeDetector",
    "Surprise",
    "TailCalibrator",
    "VolumeDetector",
    "VolumeParams",
    "VolumeScore",
    "Watermark",
    "interval_start",
    "open_by_severity",
    "run_series",
]
