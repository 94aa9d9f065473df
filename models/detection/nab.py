"""The Numenta Anomaly Benchmark (NAB) scoring rules, as written in shared/data/README.md.

- Detections during the probation period (the first `min(floor(0.15 N), 750)` rows) are
  ignored.
- Scaled sigmoid `sigma(y) = 2 / (1 + exp(5 y)) - 1`, and `-1` for `y > 3`.
- In a window of `W` rows whose last row is `R`, the earliest detection `i` earns
  `sigma(-(R - i + 1) / W) / sigma(-1) * A_TP`; later detections in it earn nothing.
- A detection outside every window costs `sigma(|R_prev - i| / (W_prev - 1)) * A_FP` (a
  negative number: cheap just after a window, -A_FP far from it), where `R_prev, W_prev`
  belong to the last window that ended before it; `-A_FP` when no window ended before it.
- A window without a detection costs `-A_FN`.
- Over a set of files: `100 * (S - S_null) / (S_perfect - S_null)` with
  `S_null = -A_FN * windows`, `S_perfect = A_TP * windows`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "PROFILES",
    "Profile",
    "FileResult",
    "probation_rows",
    "scaled_sigmoid",
    "window_rows",
    "score_file",
    "normalised_scores",
]


@dataclass(frozen=True)
class Profile:
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(a_tp=1.0, a_fp=0.11, a_fn=1.0),
    "reward_low_FP_rate": Profile(a_tp=1.0, a_fp=0.22, a_fn=1.0),
    "reward_low_FN_rate": Profile(a_tp=1.0, a_fp=0.11, a_fn=2.0),
}


def scaled_sigmoid(y: float) -> float:
    if y > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probation_rows(n_rows: int) -> int:
    return min(math.floor(0.15 * n_rows), 750)


def window_rows(
    timestamps: Sequence[datetime], windows: Sequence[tuple[datetime, datetime]]
) -> list[tuple[int, int]]:
    """Each window as (first row, last row): the first and last rows whose timestamps fall
    inside it. Rows are in file order, which a few NAB files break at clock changes (a
    timestamp repeated or an hour back), so this scans rather than bisects. A window
    covering no row is dropped (it cannot be scored).

    >>> from datetime import datetime as d
    >>> window_rows([d(2015, 1, 1, h) for h in (0, 1, 2, 1, 2, 3)], [(d(2015, 1, 1, 2),
    ...                                                           d(2015, 1, 1, 3))])
    [(2, 5)]
    """
    rows = []
    for start, end in windows:
        inside = [i for i, moment in enumerate(timestamps) if start <= moment <= end]
        if inside:
            rows.append((inside[0], inside[-1]))
    return sorted(rows)


@dataclass
class FileResult:
    """One file's raw score under one profile, with what earned or cost it."""

    score: float = 0.0
    true_positives: list[dict[str, float]] = field(default_factory=list)
    false_positives: list[dict[str, float]] = field(default_factory=list)
    missed_windows: list[int] = field(default_factory=list)  # window numbers, from 0
    windows: int = 0


def score_file(
    detections: Sequence[bool], windows: Sequence[tuple[int, int]], profile: Profile
) -> FileResult:
    """Raw NAB score of one file. `detections[i]` is the detector's decision at row i."""
    n_rows = len(detections)
    probation = probation_rows(n_rows)
    result = FileResult(windows=len(windows))
    windows = sorted(windows)
    detected = [i for i, flag in enumerate(detections) if flag and i >= probation]
    claimed = [False] * len(windows)
    for i in detected:
        inside = next((k for k, (a, b) in enumerate(windows) if a <= i <= b), None)
        if inside is not None:
            if claimed[inside]:
                continue  # only the earliest detection of a window counts
            claimed[inside] = True
            first, last = windows[inside]
            width = last - first + 1
            value = scaled_sigmoid(-(last - i + 1) / width) / scaled_sigmoid(-1.0) * profile.a_tp
            result.true_positives.append({"row": i, "window": inside, "value": value})
        else:
            before = [(a, b) for a, b in windows if b < i]
            if before:
                first, last = before[-1]
                width = last - first + 1
                # A one-row window would divide by zero; NAB's windows are never that narrow.
                value = scaled_sigmoid(abs(last - i) / max(width - 1, 1)) * profile.a_fp
            else:
                value = -profile.a_fp
            result.false_positives.append({"row": i, "value": value})
        result.score += value
    for k, was_claimed in enumerate(claimed):
        if not was_claimed:
            result.missed_windows.append(k)
            result.score -= profile.a_fn
    return result


def normalised_scores(raw_total: float, n_windows: int, profile: Profile) -> float:
    """100 for a perfect detector, 0 for one that never fires."""
    null = -profile.a_fn * n_windows
    perfect = profile.a_tp * n_windows
    if perfect == null:
        return 0.0
    return 100.0 * (raw_total - null) / (perfect - null)


def nab_report(
    files: dict[str, tuple[Sequence[datetime], Sequence[bool]]],
    windows: dict[str, Sequence[tuple[datetime, datetime]]],
) -> dict[str, object]:
    """Normalised scores over a set of files, with per-file details, as one JSON-able dict.

    `files` maps a file name to (timestamps, detections); `windows` maps the same names to
    their anomaly windows (a file absent from `windows` has none).
    """
    totals = dict.fromkeys(PROFILES, 0.0)
    window_count = 0
    details: dict[str, object] = {}
    for name in sorted(files):
        timestamps, detections = files[name]
        rows = window_rows(timestamps, windows.get(name, []))
        window_count += len(rows)
        per_profile = {}
        for profile_name, profile in PROFILES.items():
            result = score_file(detections, rows, profile)
            totals[profile_name] += result.score
            per_profile[profile_name] = round(result.score, 4)
        standard = score_file(detections, rows, PROFILES["standard"])
        details[name] = {
            "rows": len(detections),
            "probation_rows": probation_rows(len(detections)),
            "windows": len(rows),
            "detections": sum(1 for flag in detections if flag),
            "raw_scores": per_profile,
            "true_positives": [
                {
                    "window": tp["window"],
                    "timestamp": timestamps[int(tp["row"])].isoformat(sep=" "),
                    "value": round(tp["value"], 4),
                }
                for tp in standard.true_positives
            ],
            "missed_windows": standard.missed_windows,
            "false_positives": [
                {
                    "timestamp": timestamps[int(fp["row"])].isoformat(sep=" "),
                    "standard_cost": round(fp["value"], 4),
                }
                for fp in standard.false_positives
            ],
        }
    report: dict[str, object] = {
        name: round(normalised_scores(totals[name], window_count, profile), 2)
        for name, profile in PROFILES.items()
    }
    report["windows"] = window_count
    report["files"] = details
    return report
