"""`vigie detect`: run the spike detector on count series, score it on NAB, plot it.

The judgement lives in `models.detection`; this module only reads files, prints and draws.
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import click

from models.detection import DetectorConfig, run_series
from models.detection.nab import nab_report, probation_rows
from models.detection.scenarios import run_scenarios
from models.detection.series import series_config, series_unit
from pipeline.detect_settings import DetectionSettings


# -- reading series ------------------------------------------------------------------------
def read_series(path: Path, benchmark: bool = False) -> tuple[list[datetime], list[float]]:
    """A `timestamp,value` CSV (header required), in time order; ClickException if not.

    Values are counts (>= 0) at increasing times. `benchmark` takes NAB's files as they
    are, since NAB scores rows in file order: a few repeat or go back an hour at clock
    changes, and one goes below zero (the detector reads such a value as 0)."""
    timestamps: list[datetime] = []
    values: list[float] = []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:2]] != ["timestamp", "value"]:
                raise click.ClickException(f"{path}: expected a 'timestamp,value' header")
            for line_number, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    moment = datetime.fromisoformat(row[0].strip())
                    value = float(row[1])
                except (ValueError, IndexError):
                    raise click.ClickException(
                        f"{path}:{line_number}: expected 'timestamp,value', got {row!r}"
                    ) from None
                if value != value or abs(value) == float("inf"):
                    raise click.ClickException(f"{path}:{line_number}: value must be finite")
                if value < 0 and not benchmark:
                    raise click.ClickException(f"{path}:{line_number}: value must be >= 0")
                if timestamps and moment <= timestamps[-1] and not benchmark:
                    raise click.ClickException(
                        f"{path}:{line_number}: timestamps must increase ({row[0]})"
                    )
                timestamps.append(moment)
                values.append(value)
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror}") from None
    if len(timestamps) < 2:
        raise click.ClickException(f"{path}: need at least two rows")
    return timestamps, values


def series_interval(timestamps: list[datetime]) -> int:
    """The series' own interval: the median gap between rows, in whole seconds."""
    gaps = [(b - a).total_seconds() for a, b in zip(timestamps, timestamps[1:], strict=False)]
    return max(1, round(statistics.median(gaps)))


def _config_for(timestamps: list[datetime], sensitivity: float) -> DetectorConfig:
    """The pipeline's detector settings (VIGIE_DETECT_*, else the defaults), at the series'
    own interval, each row judged on its own."""
    config = replace(DetectionSettings.from_env().to_config(), sensitivity=sensitivity)
    return series_config(config, series_interval(timestamps))


def _unit_for(values: list[float]) -> float:
    """The series' unit (`series_unit`), decided on its warm-up rows: NAB's probation
    period (the first 15 %, at most 750 rows), where no detection counts."""
    return series_unit(values[: max(1, probation_rows(len(values)))])


def _read_windows(path: Path) -> dict[str, list[tuple[datetime, datetime]]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {
            name: [(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in windows]
            for name, windows in raw.items()
        }
    except OSError as exc:
        raise click.ClickException(f"{path}: {exc.strerror}") from None
    except (ValueError, TypeError, AttributeError) as exc:
        raise click.ClickException(
            f"{path}: expected {{file: [[start, end], ...]}} with ISO timestamps ({exc})"
        ) from None


def _prepare_output(path: Path) -> None:
    """Create the output's folder; a clear error (not a traceback) when that is impossible."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{path.parent}: {exc.strerror}") from None


def _csv_files(directory: Path) -> list[Path]:
    """Every CSV under `directory`, sub-folders included, in name order."""
    files = sorted(directory.rglob("*.csv"))
    if not files:
        raise click.ClickException(f"{directory}: no CSV files")
    return files


def _series_name(path: Path, directory: Path) -> str:
    """A file's name as NAB's windows file spells it: `category/file.csv` in sub-folders."""
    return path.relative_to(directory).as_posix()


sensitivity_option = click.option(
    "--sensitivity", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
    help="Divides every score threshold: 2 makes the detector twice as eager.",
)


@click.group(name="detect")
def command() -> None:
    """Spike detection on count series: run it, score it on NAB, test crisis scenarios, plot it."""


@command.command("series")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write timestamp,value,anomaly_score,alert.")
@sensitivity_option
def series_command(csv_path: Path, out_path: Path, sensitivity: float) -> None:
    """Run the detector over a timestamp,value CSV (one count per interval; a series of
    measurements, not whole numbers, is read in units of 1 % of its warm-up level)."""
    timestamps, values = read_series(csv_path)
    points = run_series(zip(timestamps, values, strict=True), _config_for(timestamps, sensitivity),
                        _unit_for(values))
    _prepare_output(out_path)
    with out_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value", "anomaly_score", "alert"])
        for raw_time, value, point in zip(
            (t.isoformat(sep=" ") for t in timestamps), values, points, strict=True
        ):
            writer.writerow(
                [raw_time, f"{value:g}", f"{point.surprise.score:.6f}", int(point.alert)]
            )
    alerts = sum(point.alert for point in points)
    click.echo(f"{len(points)} rows, {alerts} alerts -> {out_path}", err=True)


@command.command("nab")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of timestamp,value CSV files.")
@click.option("--windows", "windows_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON: file name -> [[start, end], ...] anomaly windows.")
@sensitivity_option
def nab_command(data_dir: Path, windows_path: Path, sensitivity: float) -> None:
    """Score the detector with NAB's rules on every CSV of a folder and its sub-folders
    (named `category/file.csv` as in NAB's windows file); print one JSON object.

    A detection is an event that pages a person (an incident opening or escalating), as
    the pipeline's detector makes it with the settings of pipeline/detect_settings.py.
    NAB's files are read as they are (see `read_series`)."""
    windows = _read_windows(windows_path)
    files = {}
    for path in _csv_files(data_dir):
        timestamps, values = read_series(path, benchmark=True)
        points = run_series(
            zip(timestamps, values, strict=True), _config_for(timestamps, sensitivity),
            _unit_for(values),
        )
        files[_series_name(path, data_dir)] = (timestamps, [point.alert for point in points])
    unknown = sorted(set(windows) - set(files))
    if unknown:
        raise click.ClickException(
            f"{windows_path}: no CSV under {data_dir} for {', '.join(unknown[:5])}"
        )
    report = nab_report(files, windows)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")


@command.command("scenarios")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of timestamp,value CSV files used as real background volumes.")
@click.option("--seed", type=int, default=7, show_default=True)
@sensitivity_option
def scenarios_command(data_dir: Path, seed: int, sensitivity: float) -> None:
    """Inject synthetic negative waves into real volumes; print detection delay and false
    alerts per brand-week as one JSON object."""
    backgrounds = {}
    intervals = set()
    for path in _csv_files(data_dir):
        timestamps, values = read_series(path)
        intervals.add(series_interval(timestamps))
        backgrounds[path.stem] = (timestamps, values)
    if len(intervals) != 1:
        raise click.ClickException(f"{data_dir}: files have different intervals {intervals}")
    config = DetectorConfig(interval_seconds=intervals.pop(), sensitivity=sensitivity)
    json.dump(run_scenarios(backgrounds, config, seed=seed), sys.stdout, indent=2)
    sys.stdout.write("\n")


@command.command("plot")
@click.argument("csv_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write.")
@click.option("--windows", "windows_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Optional NAB windows JSON: labelled windows are drawn too.")
@click.option("--start", type=click.DateTime(), default=None, help="First timestamp drawn.")
@click.option("--end", type=click.DateTime(), default=None, help="Last timestamp drawn.")
@sensitivity_option
def plot_command(
    csv_path: Path,
    out_path: Path,
    windows_path: Path | None,
    start: datetime | None,
    end: datetime | None,
    sensitivity: float,
) -> None:
    """Draw a series with its expectation band and incidents (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.charts import EXPECTED_COLOR, INCIDENT_COLOR, OBSERVED_COLOR

    timestamps, values = read_series(csv_path)
    unit = _unit_for(values)  # expectations come in this unit; drawn in the series' own
    points = run_series(zip(timestamps, values, strict=True), _config_for(timestamps, sensitivity),
                        unit)
    keep = [
        i for i, t in enumerate(timestamps)
        if (start is None or t >= start) and (end is None or t <= end)
    ]
    if not keep:
        raise click.ClickException("no rows between --start and --end")
    times = [timestamps[i] for i in keep]
    figure, axis = plt.subplots(figsize=(11, 4), dpi=90)
    axis.fill_between(
        times, [points[i].surprise.volume.lower * unit for i in keep],
        [points[i].surprise.volume.upper * unit for i in keep],
        color="#9ecae1", alpha=0.5, linewidth=0, label="expected band (±3 spreads)",
    )
    axis.plot(times, [points[i].surprise.volume.expected * unit for i in keep],
              color=EXPECTED_COLOR, linewidth=0.8, label="expected")
    axis.plot(times, [values[i] for i in keep], color=OBSERVED_COLOR, linewidth=0.6,
              label="observed")
    if windows_path is not None:
        shown = [
            (a, b)
            for name, spans in _read_windows(windows_path).items()
            if name == csv_path.name or name.endswith("/" + csv_path.name)
            for a, b in spans
            if b >= times[0] and a <= times[-1]
        ]
        for n, (a, b) in enumerate(shown):
            axis.axvspan(max(a, times[0]), min(b, times[-1]), color="#fdae6b", alpha=0.3,
                         label="labelled window" if n == 0 else None)
    open_since: datetime | None = None
    shaded = False
    for i in keep:
        point = points[i]
        if "opened" in point.kinds:
            open_since = point.timestamp
        if open_since is not None and ("resolved" in point.kinds or i == keep[-1]):
            axis.axvspan(open_since, point.timestamp, color=INCIDENT_COLOR, alpha=0.12,
                         label=None if shaded else "incident open")
            shaded, open_since = True, None
    alert_rows = [i for i in keep if points[i].alert]
    axis.scatter([timestamps[i] for i in alert_rows], [values[i] for i in alert_rows],
                 color=INCIDENT_COLOR, s=18, zorder=3, label="alert (opened / escalated)")
    axis.set_xlim(times[0], times[-1])
    axis.set_yscale("symlog", linthresh=10)
    axis.set_ylim(bottom=0, top=max(values[i] for i in keep) * 4 + 10)
    axis.set_title(f"{csv_path.name}: {len(alert_rows)} alerts in view")
    axis.set_ylabel("count per interval")
    axis.legend(loc="upper left", fontsize=7, ncol=3, framealpha=0.9)
    figure.autofmt_xdate()
    figure.tight_layout()
    _prepare_output(out_path)
    figure.savefig(out_path, format="png")
    plt.close(figure)
    click.echo(f"wrote {out_path}", err=True)
