"""What NAB counts as a detection is what pages a person: the benchmark's alerts are the
BrandMonitor's opening and escalation events, and the alert policy pages for exactly those."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from models.detection import DetectorConfig, run_series
from models.detection.monitor import pages_someone
from pipeline.notify.policy import AlertTimings, LedgerEntry, apply_event, plan

STEP = timedelta(minutes=5)
PER_DAY = 288
START = datetime(2026, 1, 5)


@dataclass(frozen=True)
class Owner:
    receivers: tuple[str, ...] = ("pr-slack",)
    min_severity: str = "info"


def series() -> list[tuple[datetime, float]]:
    """Four quiet days, a wave (x6), a far bigger one inside its quiet period (an
    escalation), a threaded resurgence, calm, then a second wave after the quiet period."""
    means = np.full(9 * PER_DAY, 40.0)
    wave = 4 * PER_DAY
    means[wave : wave + 6] = 240
    means[wave + 60 : wave + 63] = 40_000
    means[wave + 200 : wave + 203] = 900
    means[8 * PER_DAY : 8 * PER_DAY + 6] = 4000
    values = np.random.default_rng(12).poisson(means)
    return [(START + i * STEP, float(v)) for i, v in enumerate(values)]


def test_benchmark_alerts_are_the_events_the_alert_policy_pages_for() -> None:
    config = DetectorConfig(interval_seconds=300, quiet_minutes=1440)
    points = run_series(series(), config)
    events = [(i, event) for i, point in enumerate(points) for event in point.events]
    kinds = [event["event"] + ("+" if event["escalated"] else "") for _, event in events]
    assert kinds.count("opened") == 2 and "updated+" in kinds and "updated" in kinds, kinds

    timings = AlertTimings(group_wait_s=0.0, repeat_interval_s=1e12)
    states: dict[str, object] = {}
    ledger: dict[str, LedgerEntry] = {}
    paged_rows = []
    for i, event in events:
        now = float(i * 300)
        state, _ = apply_event(states.get(event["incident_id"]), event, now, 0)
        states[event["incident_id"]] = state
        due = plan(state, ledger, [Owner()], now, timings)
        for note in due:
            ledger[note.key] = LedgerEntry(note.key, note.incident_id, note.receiver, note.kind,
                                           note.sequence, "sent", now)
        if any(note.kind in ("opened", "escalated") for note in due):
            paged_rows.append(i)
        assert any(n.kind in ("opened", "escalated") for n in due) == pages_someone(event)
    assert paged_rows == [i for i, point in enumerate(points) if point.alert]
