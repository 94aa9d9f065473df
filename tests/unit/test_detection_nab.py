"""The NAB scorer against cases computed by hand from the rules in shared/data/README.md."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from models.detection.nab import (
    PROFILES,
    nab_report,
    normalised_scores,
    probation_rows,
    scaled_sigmoid,
    score_file,
    window_rows,
)

# Hand computation, sigma(y) = 2 / (1 + exp(5y)) - 1:
#   sigma(-1)   = 2 / (1 + e^-5)    - 1 = 2 / 1.0067379 - 1 =  0.9866143
#   sigma(-0.5) = 2 / (1 + e^-2.5)  - 1 = 2 / 1.0820850 - 1 =  0.8482836
#   sigma(1/9)  = 2 / (1 + e^0.5556) - 1 = 2 / 2.7429090 - 1 = -0.2708471
#   sigma(11/9) = 2 / (1 + e^6.1111) - 1 = 2 / 451.83937  - 1 = -0.9955736
SIGMA_M1, SIGMA_M05, SIGMA_NINTH, SIGMA_11_9 = 0.9866143, 0.8482836, -0.2708471, -0.9955736


def test_scaled_sigmoid_values() -> None:
    assert scaled_sigmoid(-1) == pytest.approx(SIGMA_M1, abs=1e-6)
    assert scaled_sigmoid(-0.5) == pytest.approx(SIGMA_M05, abs=1e-6)
    assert scaled_sigmoid(1 / 9) == pytest.approx(SIGMA_NINTH, abs=1e-6)
    assert scaled_sigmoid(3.01) == -1.0
    assert scaled_sigmoid(0) == 0.0


def test_probation_is_fifteen_percent_capped_at_750() -> None:
    assert probation_rows(100) == 15
    assert probation_rows(15_902) == 750


def test_hand_computed_file() -> None:
    # 100 rows, probation 15. Windows: rows 40..49 (W=10, R=49) and 80..89.
    windows = [(40, 49), (80, 89)]
    detections = [False] * 100
    for row in (10, 20, 45, 47, 50, 60):
        detections[row] = True
    # row 10: in probation, ignored.
    # row 20: no window before it -> -A_FP = -0.11.
    # row 45: first in window 1 -> sigma(-(49-45+1)/10)/sigma(-1) = 0.8482836/0.9866143
    #         = 0.8597926.
    # row 47: second in window 1 -> nothing.
    # row 50: after window 1 -> sigma(|49-50|/9) * 0.11 = -0.2708471 * 0.11 = -0.0297932.
    # row 60: sigma(|49-60|/9) * 0.11 = -0.9955736 * 0.11 = -0.1095131.
    # window 2 missed -> -1.
    # total = -0.11 + 0.8597926 - 0.0297932 - 0.1095131 - 1 = -0.3895137
    result = score_file(detections, windows, PROFILES["standard"])
    assert result.score == pytest.approx(-0.3895137, abs=1e-6)
    assert result.missed_windows == [1]
    assert [fp["row"] for fp in result.false_positives] == [20, 50, 60]
    # reward_low_FP_rate doubles the three FP costs: -0.22 - 0.0595864 - 0.2190262,
    # total = -0.4986126 + 0.8597926 - 1 = -0.6388200.
    low_fp = score_file(detections, windows, PROFILES["reward_low_FP_rate"])
    assert low_fp.score == pytest.approx(-0.6388200, abs=1e-6)
    # reward_low_FN_rate: the miss costs 2: -0.3895137 - 1 = -1.3895137.
    low_fn = score_file(detections, windows, PROFILES["reward_low_FN_rate"])
    assert low_fn.score == pytest.approx(-1.3895137, abs=1e-6)
    # Normalised over 2 windows: 100 * (S + 2) / 4 = 40.262.
    assert normalised_scores(result.score, 2, PROFILES["standard"]) == pytest.approx(40.262, 1e-3)


def test_detection_at_left_edge_earns_a_full_point() -> None:
    detections = [False] * 100
    detections[40] = True  # -(49 - 40 + 1)/10 = -1 -> sigma(-1)/sigma(-1) = 1
    result = score_file(detections, [(40, 49)], PROFILES["standard"])
    assert result.score == pytest.approx(1.0)
    assert normalised_scores(result.score, 1, PROFILES["standard"]) == pytest.approx(100.0)


def test_null_detector_scores_zero() -> None:
    result = score_file([False] * 100, [(40, 49), (80, 89)], PROFILES["standard"])
    assert result.score == -2.0
    assert normalised_scores(result.score, 2, PROFILES["standard"]) == 0.0


def test_windows_map_timestamps_to_rows_and_report_aggregates_files() -> None:
    start = datetime(2015, 3, 1)
    stamps = [start + timedelta(minutes=5 * i) for i in range(100)]
    # Window from 03:17:53 to 04:02:53: rows 40 (03:20) .. 48 (04:00).
    window = (start + timedelta(hours=3, minutes=17, seconds=53),
              start + timedelta(hours=4, minutes=2, seconds=53))
    assert window_rows(stamps, [window]) == [(40, 48)]
    detections = [False] * 100
    detections[40] = True
    report = nab_report({"a.csv": (stamps, detections), "b.csv": (stamps, [False] * 100)},
                        {"a.csv": [window], "b.csv": [window]})
    # a: a full point (left edge); b: a miss (-1). S = 0, null = -2, perfect = 2 -> 50.
    assert report["standard"] == pytest.approx(50.0)
    assert report["windows"] == 2
    assert report["files"]["b.csv"]["missed_windows"] == [0]
    assert math.isclose(report["files"]["a.csv"]["true_positives"][0]["value"], 1.0)
