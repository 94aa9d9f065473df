"""Why the detector misses NAB windows: each missed window of a folder, with its cause.

    nice .venv/bin/python bench/detection_misses.py $DATA/nab-other [--raw]

runs the detector as `vigie detect nab` does (pipeline settings, each series read in its
unit: `series_unit` on the warm-up rows; `--raw` reads every series as counts, as before
measurements had a unit) and sorts every window without a page by the first cause that
applies (models/detection/RESULTS.md, "Why it collapsed"):

- quiet period: a row of the window triggers, but an incident was already open;
- min_negative: z and rarity enough, but too few counts in the row;
- z gate: some row is rare enough (rarity >= open_rarity) but its z is below open_score;
- rarity gate: some row has z >= open_score, but such z are frequent for this series;
- drop only: no surprising surge, but some row is surprisingly low (z <= -3);
- nothing surprising: neither.

Prints one JSON object: the counts per cause, the missed windows of each file with their
cause, and each file's hits and false alerts. Not part of the test run.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/pipeline.py would shadow the
# project's `pipeline` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from models.detection import run_series  # noqa: E402
from models.detection.nab import PROFILES, probation_rows, score_file, window_rows  # noqa: E402
from models.detection.series import series_unit  # noqa: E402
from pipeline.cli.detect import _config_for, read_series  # noqa: E402

DROP_Z = -3.0


def cause(points: list, first: int, last: int, config) -> str:
    rows = points[first : last + 1]
    surprises = [point.surprise for point in rows]
    if any(s.trigger for s in surprises):
        return "quiet period"
    z_ok = [s.z >= config.threshold("open_score") for s in surprises]
    rare = [s.rarity >= config.threshold("open_rarity") for s in surprises]
    if any(a and b for a, b in zip(z_ok, rare, strict=True)):
        return "min_negative"
    if any(rare):
        return "z gate"
    if any(z_ok):
        return "rarity gate"
    if any(s.z <= DROP_Z for s in surprises):
        return "drop only"
    return "nothing surprising"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        sys.exit("usage: bench/detection_misses.py FOLDER [--raw]")
    folder, raw = Path(args[0]), "--raw" in sys.argv
    windows = json.loads((folder / "windows.json").read_text(encoding="utf-8"))
    causes: Counter[str] = Counter()
    files = {}
    for path in sorted(folder.rglob("*.csv")):
        name = path.relative_to(folder).as_posix()
        stamps, values = read_series(path, benchmark=True)
        config = _config_for(stamps, 1.0)
        unit = 1.0 if raw else series_unit(values[: max(1, probation_rows(len(values)))])
        points = run_series(zip(stamps, values, strict=True), config, unit)
        spans = [(datetime.fromisoformat(a), datetime.fromisoformat(b))
                 for a, b in windows.get(name, [])]
        rows = window_rows(stamps, spans)
        result = score_file([p.alert for p in points], rows, PROFILES["standard"])
        hit = {int(tp["window"]) for tp in result.true_positives}
        missed = {}
        for k, (first, last) in enumerate(rows):
            if k not in hit:
                missed[str(stamps[first])] = cause(points, first, last, config)
                causes[missed[str(stamps[first])]] += 1
        files[name] = {"unit": unit, "windows": len(rows), "hits": len(hit),
                       "false_alerts": len(result.false_positives), "missed": missed}
    json.dump({"missed_by_cause": dict(causes.most_common()), "files": files},
              sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
