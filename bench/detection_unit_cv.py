"""The measurement unit (`series.MEASUREMENT_UNITS`) chosen by leave-one-series-out:

    nice .venv/bin/python bench/detection_unit_cv.py $DATA/nab-other

The unit was first picked on nab-other itself (in sample). Here each series is scored with
the unit that gives the best pooled standard score on the other series, and the held-out
scores are pooled: the out-of-sample figure. Prints one line per unit (in sample), the
choices, then the leave-one-out figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/pipeline.py would shadow the
# project's `pipeline` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from models.detection import series  # noqa: E402
from models.detection.nab import PROFILES, nab_report, normalised_scores  # noqa: E402
from pipeline.cli import detect  # noqa: E402

UNITS = (30.0, 100.0, 1000.0, 10000.0)


def raw_scores(data: Path, windows: dict, units: float) -> dict[str, dict[str, float]]:
    """Each file's raw NAB scores by profile with `units` units per typical level."""
    series.MEASUREMENT_UNITS = units  # read by series_unit at each call
    files = {}
    for path in detect._csv_files(data):
        timestamps, values = detect.read_series(path, benchmark=True)
        points = series.run_series(zip(timestamps, values, strict=True),
                                   detect._config_for(timestamps, 1.0),
                                   detect._unit_for(values))
        files[detect._series_name(path, data)] = (timestamps, [p.alert for p in points])
    report = nab_report(files, windows)
    print(f"{units:>7.0f} units, in sample:",
          {p: report[p] for p in PROFILES}, flush=True)
    return {name: d["raw_scores"] for name, d in report["files"].items()}


def main(data: Path) -> None:
    windows = detect._read_windows(data / "windows.json")
    per_unit = {units: raw_scores(data, windows, units) for units in UNITS}
    names = sorted(per_unit[UNITS[0]])
    n_windows = sum(len(windows.get(name, [])) for name in names)
    pooled = dict.fromkeys(PROFILES, 0.0)
    chosen: dict[float, int] = {}
    for held in names:
        best = max(UNITS, key=lambda u: sum(per_unit[u][n]["standard"]
                                            for n in names if n != held))
        chosen[best] = chosen.get(best, 0) + 1
        for profile in PROFILES:
            pooled[profile] += per_unit[best][held][profile]
    print("units chosen (folds):", chosen)
    print("leave-one-series-out:",
          {p: round(normalised_scores(pooled[p], n_windows, PROFILES[p]), 1) for p in PROFILES})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
