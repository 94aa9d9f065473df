"""What NAB counts as a detection is what pages a person: the benchmark's alerts are the
BrandMonitor's opening and escalation events, and the alert policy pages for exactly those."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from models.detection import BrandMonitor, DetectorConfig, run_series
from models.detection.lifecycle import IncidentLifecycle
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


def test_pages_and_resolutions_of_the_series_are_where_they_were() -> None:
    """The subsided state changes no page: openings, escalations and resolutions of the
    series above at the rows the lifecycle gave before it existed (quiet 1 day and 2 days)."""
    for quiet, resolved in ((1440, 1440), (2880, 1728)):
        points = run_series(series(), DetectorConfig(interval_seconds=300, quiet_minutes=quiet))
        kept = [(i, e["event"], e["escalated"], e["severity"]) for i, p in enumerate(points)
                for e in p.events if pages_someone(e) or e["event"] == "resolved"]
        assert kept == [(1152, "opened", False, "info"), (1212, "updated", True, "critical"),
                        (resolved, "resolved", False, "critical"),
                        (2304, "opened", False, "critical")]
        statuses = [e["status"] for p in points for e in p.events]
        assert "subsided" in statuses  # between the waves, inside the quiet period


def _old_step(lifecycle: dict, trigger: bool, active: bool, severity: int, quiet_intervals: int,
              calm_intervals: int) -> tuple[str | None, bool]:
    """IncidentLifecycle.step before the subsided state (2af7978), for comparison."""
    lifecycle["intervals"] += 1
    if not lifecycle["is_open"]:
        if trigger:
            lifecycle.update(is_open=True, severity=severity, quiet=0,
                             opened_index=lifecycle["intervals"])
            return "opened", False
        return None, False
    calm = not (trigger or active)
    lifecycle["quiet"] = lifecycle["quiet"] + 1 if calm else 0
    held = lifecycle["intervals"] - lifecycle["opened_index"]
    if calm and held >= quiet_intervals and lifecycle["quiet"] >= calm_intervals:
        lifecycle["is_open"] = False
        return "resolved", False
    if trigger and severity > lifecycle["severity"]:
        lifecycle["severity"] = severity
        return "updated", True
    return None, False


def test_subsided_and_renewed_surges_never_move_an_opening_escalation_or_resolution() -> None:
    rng = np.random.default_rng(3)
    for case in range(200):
        quiet, calm = int(rng.integers(1, 30)), int(rng.integers(1, 6))
        new = IncidentLifecycle(quiet_intervals=quiet, calm_intervals=calm)
        old = {"is_open": False, "severity": 0, "quiet": 0, "opened_index": -1, "intervals": 0}
        for _ in range(300):
            trigger = bool(rng.random() < 0.05)
            active = trigger or bool(rng.random() < 0.2)
            severity, surging = int(rng.integers(0, 3)), bool(rng.random() < 0.5)
            step = new.step(trigger, active, severity, surging)
            expected = _old_step(old, trigger, active, severity, quiet, calm)
            if step.event in ("opened", "resolved") or step.escalated:
                assert (step.event, step.escalated) == expected, case
            else:
                assert expected == (None, False), case
                assert step.event in (None, "subsided", "updated")


def test_a_wave_that_calms_after_20_minutes_gets_no_reminder_in_the_next_two_days() -> None:
    """The pipeline's detector (defaults: 2-day quiet period) and the alert policy (4-hour
    repeat): one page, one "it subsided" message, no reminder, then the resolution."""
    config = DetectorConfig()
    monitor = BrandMonitor("acme", "ACME", config)
    rng = np.random.default_rng(20)
    minute = timedelta(minutes=1)
    start = datetime(2026, 11, 23, tzinfo=UTC)
    wave = 1440  # after a day of ordinary chatter
    owners = [Owner(receivers=("pr-slack", "pr-email"))]
    timings = AlertTimings()  # 10 s group wait, 4 h repeat
    states: dict[str, object] = {}
    ledger: dict[str, LedgerEntry] = {}
    sent: list[tuple[int, str, str]] = []
    for i in range(wave + 2 * 1440 + 120):
        negative = int(rng.poisson(2)) + (60 if wave <= i < wave + 20 else 0)
        monitor.add_counts(negative=negative, neutral=int(rng.poisson(8)))
        events = monitor.close_interval(start + i * minute, start + (i + 1) * minute)
        for tick in (1, 30):  # a policy tick 1 s and 30 s after the interval closed
            now = (start + (i + 1) * minute).timestamp() + tick
            for event in events:
                states[event["incident_id"]], _ = apply_event(
                    states.get(event["incident_id"]), event, now, 0)
            for state in states.values():
                for note in plan(state, ledger, owners, now, timings):
                    ledger[note.key] = LedgerEntry(note.key, note.incident_id, note.receiver,
                                                   note.kind, note.sequence, "sent", now)
                    sent.append((i, note.kind, note.receiver))
    kinds = [kind for _, kind, _ in sent]
    assert kinds.count("reminder") == 0, sent
    # The pages (opening, escalations as the wave grows) come during the wave; then each
    # receiver hears once that it subsided, and once that it is resolved.
    assert {kind for i, kind, _ in sent if i < wave + 20} == {"opened", "escalated"}, sent
    later = sorted((kind, receiver) for i, kind, receiver in sent if i >= wave + 20)
    assert later == [("resolved", "pr-email"), ("resolved", "pr-slack"),
                     ("subsided", "pr-email"), ("subsided", "pr-slack")], sent
    subsided_rows = [i for i, kind, _ in sent if kind == "subsided"]
    # Told within minutes of the wave's end: one window calm (10 min) after it left the
    # window (10 min), not two days later.
    assert all(wave + 20 <= i <= wave + 40 for i in subsided_rows), subsided_rows
    resolved_rows = [i for i, kind, _ in sent if kind == "resolved"]
    assert all(i >= wave + config.quiet_intervals for i in resolved_rows)
