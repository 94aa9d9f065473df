"""`vigie detect series` and `vigie detect nab` on small files."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from pipeline.cli import main

START = datetime(2015, 3, 2)
ROWS = 6 * 288  # six days of 5-minute counts
SPIKE = 5 * 288 + 40


def write_series(path: Path) -> list[datetime]:
    values = np.random.default_rng(11).poisson(30, ROWS)
    values[SPIKE : SPIKE + 3] = 900
    stamps = [START + timedelta(minutes=5 * i) for i in range(ROWS)]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for stamp, value in zip(stamps, values, strict=True):
            writer.writerow([stamp.strftime("%Y-%m-%d %H:%M:%S"), int(value)])
    return stamps


def test_series_command_writes_scores_and_alerts(tmp_path: Path) -> None:
    source, out = tmp_path / "volume.csv", tmp_path / "scored.csv"
    write_series(source)
    result = CliRunner().invoke(main, ["detect", "series", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    assert len(rows) == ROWS
    assert rows[SPIKE]["timestamp"] == "2015-03-07 03:20:00"
    assert all(0.0 <= float(row["anomaly_score"]) <= 1.0 for row in rows)
    assert [i for i, row in enumerate(rows) if row["alert"] == "1"] == [SPIKE]
    assert float(rows[SPIKE]["anomaly_score"]) > 0.999
    assert float(rows[SPIKE - 1]["anomaly_score"]) < 0.99


def test_series_command_reports_the_bad_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("timestamp,value\n2015-03-02 00:00:00,3\n2015-03-02 00:05:00,many\n")
    result = CliRunner().invoke(
        main, ["detect", "series", str(source), "--out", str(tmp_path / "o.csv")]
    )
    assert result.exit_code != 0
    assert "bad.csv:3" in result.output
    assert not (tmp_path / "o.csv").exists()


def test_nab_command_prints_one_json_object(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    stamps = write_series(data / "one.csv")
    windows = tmp_path / "windows.json"
    window = [stamps[SPIKE - 20].isoformat(sep=" ") + ".000000",
              stamps[SPIKE + 20].isoformat(sep=" ") + ".000000"]
    windows.write_text(json.dumps({"one.csv": [window]}))
    result = CliRunner().invoke(
        main, ["detect", "nab", "--data", str(data), "--windows", str(windows)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    # One detection, 21 rows into a 41-row window: sigma(-(20+1)/41)/sigma(-1) ~ 0.86.
    assert report["windows"] == 1
    assert report["files"]["one.csv"]["missed_windows"] == []
    assert 0.8 < report["files"]["one.csv"]["true_positives"][0]["value"] < 0.9
    assert report["standard"] > 90 and report["reward_low_FP_rate"] > 90


def test_nab_command_reads_category_folders_as_nab_names_them(tmp_path: Path) -> None:
    """NAB's other categories: `category/file.csv` in sub-folders, as the windows file
    names them; a repeated timestamp (clock change) and a value below zero are taken as
    they are, since NAB scores rows."""
    data = tmp_path / "nab-other"
    (data / "realKnownCause").mkdir(parents=True)
    (data / "artificialNoAnomaly").mkdir()
    stamps = write_series(data / "realKnownCause" / "taxi.csv")
    quirky = data / "artificialNoAnomaly" / "flat.csv"
    rows = ["timestamp,value", "2014-04-01 00:00:00,-2.5", "2014-04-01 00:05:00,1.5",
            "2014-04-01 00:05:00,1.5"] + [
        f"2014-04-01 {h:02d}:{m:02d}:00,1.5" for h in range(1, 12) for m in range(0, 60, 5)]
    quirky.write_text("\n".join(rows) + "\n")
    window = [stamps[SPIKE - 20].isoformat(sep=" ") + ".000000",
              stamps[SPIKE + 20].isoformat(sep=" ") + ".000000"]
    windows = data / "windows.json"
    windows.write_text(json.dumps({"realKnownCause/taxi.csv": [window],
                                   "artificialNoAnomaly/flat.csv": []}))
    result = CliRunner().invoke(
        main, ["detect", "nab", "--data", str(data), "--windows", str(windows)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert sorted(report["files"]) == ["artificialNoAnomaly/flat.csv", "realKnownCause/taxi.csv"]
    assert report["windows"] == 1
    assert report["files"]["realKnownCause/taxi.csv"]["missed_windows"] == []
    assert report["files"]["artificialNoAnomaly/flat.csv"]["rows"] == len(rows) - 1


def test_nab_command_names_a_windows_entry_without_its_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_series(data / "one.csv")
    windows = tmp_path / "windows.json"
    windows.write_text(json.dumps({"one.csv": [], "realTraffic/speed.csv": []}))
    result = CliRunner().invoke(
        main, ["detect", "nab", "--data", str(data), "--windows", str(windows)]
    )
    assert result.exit_code != 0
    assert "realTraffic/speed.csv" in result.output


def test_pipeline_defaults_are_the_configuration_chosen_by_cross_validation() -> None:
    """pipeline/detect_settings.py passes the detector's defaults through unchanged (those
    that bench/detection_cv.py chose: a 2-day quiet period, z 4, rarity 3)."""
    from models.detection import DetectorConfig
    from pipeline.detect_settings import DetectionSettings

    assert DetectionSettings().to_config() == DetectorConfig()
    chosen = DetectorConfig()
    assert (chosen.quiet_minutes, chosen.open_score, chosen.open_rarity,
            chosen.volume.count_offset) == (2880.0, 4.0, 3.0, 3.0)


def test_series_command_reads_a_measurement_in_units_of_its_own_level(tmp_path: Path) -> None:
    # A price around 0.10 (not a count) that jumps tenfold for a quarter of an hour. Read in
    # its own units it never left the count model's floor (log(x + 3), Poisson spread, at
    # least 10 posts): no alert at all. Read in units of 1 % of its level, it alerts there.
    rng = np.random.default_rng(5)
    values = 0.10 * np.exp(rng.normal(0.0, 0.08, ROWS))
    values[SPIKE : SPIKE + 3] = 1.0
    stamps = [START + timedelta(minutes=5 * i) for i in range(ROWS)]
    source, out = tmp_path / "cpc.csv", tmp_path / "scored.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for stamp, value in zip(stamps, values, strict=True):
            writer.writerow([stamp.strftime("%Y-%m-%d %H:%M:%S"), f"{value:.6f}"])
    result = CliRunner().invoke(main, ["detect", "series", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with out.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [i for i, row in enumerate(rows) if row["alert"] == "1"] == [SPIKE]
