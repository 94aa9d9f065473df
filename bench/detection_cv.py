"""Leave-one-series-out choice of the detector's configuration on the shared NAB tweets.

Every configuration choice of the detector is made here, and only here, by the same rule:
for each of the five shared `realTweets` files, the configuration of SPACE that scores
best on the *other four* is chosen and scores the held-out file; the five held-out scores
pooled are the out-of-sample figure. "Best" is an objective summed over the four files as
they are and over thinned copies of them (each tweet kept with probability 0.3, and 0.1,
seeded): smaller brands with the same labelled waves, so that the choice does not depend
on the volume level of five big brands. Detections are the events that page a person,
made by the pipeline's own BrandMonitor (models/detection/series.py), as `vigie detect
nab` makes them.

One objective per choice, all made in one pass over the search (the configurations are
run once; only the rule that picks among them differs):
- `default`: standard + reward-low-FP normalised score (the service's default
  configuration, models/detection/config.py);
- `standard`, `reward_low_FP_rate`, `reward_low_FN_rate`: that NAB profile's normalised
  score alone, as NAB itself sets a detector's threshold separately for each profile.

    nice .venv/bin/python bench/detection_cv.py $DATA [--wider] [--cache FILE]

where DATA is the shared data folder (default: a `shared/data` above this checkout); about
10-15 min on one free core (twice that with `--wider`, see WIDER).
`--cache FILE` keeps each configuration's per-file results in FILE (JSON) and reuses
them on the next run, so changing only the objectives or adding a value costs nothing
for the configurations already run.

For each objective it prints the leave-one-out scores (on the files as they are, the
headline, and on the thinned copies), each fold's choice, the configuration chosen on all
five and its in-sample scores, and those of its neighbours. Not part of the test run.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.detection import DetectorConfig, run_series
from models.detection.nab import PROFILES, normalised_scores, score_file, window_rows
from models.detection.series import series_config

# The shared data folder is the first argument; else a shared/data above this checkout.
SHARED = next(
    (
        parent / "shared" / "data"
        for parent in Path(__file__).resolve().parents
        if (parent / "shared" / "data" / "nab-realtweets").is_dir()
    ),
    None,
)

# The whole search space: 54 configurations. count_offset: log(x + 3) or log(x + 1);
# open_score / open_rarity: how surprising and how rare an interval must be to page;
# quiet_minutes: the quiet period after an opening (lifecycle.py). Everything else keeps
# the default of DetectorConfig / VolumeParams (inherited, not re-tuned; RESULTS.md shows
# what moving them does). The previous defaults come first: a tie keeps them.
SPACE: dict[str, list[float]] = {
    "count_offset": [3.0, 1.0],
    "open_score": [4.0, 3.0, 5.0],
    "open_rarity": [3.0, 2.5, 3.5],
    "quiet_minutes": [1440.0, 2160.0, 2880.0],
}
# `--wider`: one more value for each knob whose chosen value sits at an edge of SPACE
# (108 configurations): log(x + 10), 10 being the fewest posts that may page
# (min_negative), and a 3-day quiet period. Neither is chosen by any objective in any
# fold (RESULTS.md, "What was tried"), so SPACE keeps its 54.
WIDER: dict[str, list[float]] = {"count_offset": [10.0], "quiet_minutes": [4320.0]}
VOLUME_KEYS = ("count_offset", "huber_k")
SCALES = (1.0, 0.3, 0.1)  # the files as they are, then thinned copies

Series = tuple[list[datetime], list[float], list[tuple[int, int]]]


def load(folder: Path) -> dict[str, Series]:
    windows = json.loads((folder / "windows.json").read_text(encoding="utf-8"))
    data: dict[str, Series] = {}
    for path in sorted(folder.glob("*.csv")):
        rows = [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
        stamps = [datetime.fromisoformat(a) for a, _ in rows]
        values = [float(b) for _, b in rows]
        spans = [
            (datetime.fromisoformat(a), datetime.fromisoformat(b))
            for a, b in windows.get(path.name, [])
        ]
        data[path.name] = (stamps, values, window_rows(stamps, spans))
    return data


def config_of(choice: dict[str, float], interval_seconds: int) -> DetectorConfig:
    base = DetectorConfig()  # = pipeline/detect_settings.py's defaults (a unit test checks)
    volume = replace(base.volume, **{k: v for k, v in choice.items() if k in VOLUME_KEYS})
    others = {k: v for k, v in choice.items() if k not in VOLUME_KEYS}
    close = min(base.close_score, others.get("open_score", base.open_score))
    config = replace(base, volume=volume, close_score=close, **others)
    return series_config(config, interval_seconds)


def interval_of(stamps: list[datetime]) -> int:
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    return round(statistics.median(gaps))


def per_file(config_for: Any, data: dict[str, Series]) -> dict[str, dict[str, float]]:
    """Raw NAB scores (every profile), hits and false alerts of each file."""
    result = {}
    for name, (stamps, values, rows) in data.items():
        config = config_for(interval_of(stamps))
        detections = [point.alert for point in run_series(zip(stamps, values, strict=True), config)]
        scores: dict[str, float] = {p: score_file(detections, rows, profile).score
                                    for p, profile in PROFILES.items()}
        standard = score_file(detections, rows, PROFILES["standard"])
        scores.update(hits=len(standard.true_positives), false=len(standard.false_positives),
                      windows=len(rows))
        result[name] = scores
    return result


def pooled(results: dict[str, dict[str, float]], names: list[str]) -> dict[str, float]:
    windows = sum(int(results[n]["windows"]) for n in names)
    return {
        p: round(normalised_scores(sum(results[n][p] for n in names), windows, profile), 1)
        for p, profile in PROFILES.items()
    }


# What each choice maximises (over the files as they are and the thinned copies).
OBJECTIVES: dict[str, tuple[str, ...]] = {
    "default": ("standard", "reward_low_FP_rate"),
    **{profile: (profile,) for profile in PROFILES},
}


def thinned(data: dict[str, Series], keep: float, seed: int = 11) -> dict[str, Series]:
    if keep >= 1.0:
        return data
    rng = np.random.default_rng(seed)
    return {
        name: (stamps, rng.binomial(np.asarray(values, dtype=np.int64), keep).astype(float)
               .tolist(), rows)
        for name, (stamps, values, rows) in data.items()
    }


Results = dict[str, dict[str, float]]
Table = list[tuple[dict[str, float], dict[float, Results]]]


def search(copies: dict[float, dict[str, Series]], space: dict[str, list[float]],
           cache_path: Path | None) -> Table:
    """Every configuration of `space` run on every file of every copy (cached by choice)."""
    cache: dict[str, dict[str, Results]] = {}
    if cache_path is not None and cache_path.exists():
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    keys = list(space)
    choices = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*space.values())]
    table: Table = []
    for n, choice in enumerate(choices, start=1):
        key = json.dumps(choice, sort_keys=True)
        if key not in cache:
            cache[key] = {
                str(scale): per_file(lambda interval, c=choice: config_of(c, interval), copy)
                for scale, copy in copies.items()
            }
            if cache_path is not None:
                cache_path.write_text(json.dumps(cache), encoding="utf-8")
        by_scale = {scale: cache[key][str(scale)] for scale in copies}
        table.append((choice, by_scale))
        print(f"[{n}/{len(choices)}] {choice} {pooled(by_scale[1.0], sorted(by_scale[1.0]))}",
              file=sys.stderr)
    return table


def choose(table: Table, space: dict[str, list[float]], objective: tuple[str, ...],
           names: list[str]) -> dict[str, Any]:
    """Leave-one-out choice and scores for one objective; the first of a tie is kept."""

    def score(by_scale: dict[float, Results], files: list[str]) -> float:
        return sum(
            sum(pooled(results, files)[p] for p in objective) for results in by_scale.values()
        )

    held_out: dict[float, Results] = {scale: {} for scale in SCALES}
    folds = {}
    for held in names:
        train = [n for n in names if n != held]
        choice, by_scale = max(table, key=lambda item: score(item[1], train))
        for scale in SCALES:
            held_out[scale][held] = by_scale[scale][held]
        folds[held] = {"chosen_on_the_other_four": choice, "held_out": {
            k: round(v, 3) for k, v in by_scale[1.0][held].items()}}
    chosen, in_sample = max(table, key=lambda item: score(item[1], names))

    # Neighbours of the chosen configuration: one key moved at a time (files as they are).
    neighbours = []
    for key, values in space.items():
        for value in values:
            if value != chosen[key]:
                moved = {**chosen, key: value}
                by_scale = next(r for c, r in table if c == moved)
                neighbours.append({"change": f"{key}={value:g}", **pooled(by_scale[1.0], names)})
    return {
        "objective": " + ".join(objective),
        "leave_one_out": pooled(held_out[1.0], names),
        "leave_one_out_thinned": {
            f"x{scale}": pooled(held_out[scale], names) for scale in SCALES if scale < 1.0
        },
        "leave_one_out_files": {
            n: {k: held_out[1.0][n][k] for k in ("hits", "windows", "false")} for n in names
        },
        "folds": folds,
        "chosen_on_all_five": chosen,
        "in_sample": {f"x{scale}": pooled(in_sample[scale], names) for scale in SCALES},
        "neighbours_in_sample": neighbours,
    }


def main() -> None:
    args = sys.argv[1:]
    space = SPACE
    if "--wider" in args:
        args.remove("--wider")
        space = {key: values + WIDER.get(key, []) for key, values in SPACE.items()}
    cache_path = None
    if "--cache" in args:
        at = args.index("--cache")
        cache_path = Path(args[at + 1])
        del args[at:at + 2]
    shared = Path(args[0]) if args else SHARED
    if shared is None or not (shared / "nab-realtweets").is_dir():
        sys.exit("usage: bench/detection_cv.py DATA [--wider] [--cache FILE] "
                 "(DATA: the shared data folder, with nab-realtweets/)")
    data = load(shared / "nab-realtweets")
    names = sorted(data)
    copies = {scale: thinned(data, scale) for scale in SCALES}
    table = search(copies, space, cache_path)
    report = {
        "space": space,
        "objectives": {
            name: choose(table, space, objective, names)
            for name, objective in OBJECTIVES.items()
        },
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
