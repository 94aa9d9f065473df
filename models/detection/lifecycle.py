"""Incident lifecycle: one incident per wave, and a quiet period after each opening.

An incident opens when an interval is surprising enough (`trigger`); that is the page.
It then stays open for at least `quiet_intervals` (the quiet period): further triggers in
that time belong to the same incident and page nobody again, unless its severity rises
(an escalation, which pages). Once the quiet period is over, the incident resolves as soon
as the last `calm_intervals` intervals were calm (neither `trigger` nor `active`; the
monitor uses its evidence window, so the wave has left it), so a wave still going on at
that point keeps it open. After it resolves, a new incident needs a fresh trigger.

Inside the quiet period the incident is open but need not be *active*: as soon as that
same calm test holds, the wave has subsided (`subsided` step, no page), and people are
told so instead of being reminded of a wave that is over. A renewed surge (by default:
any interval that is not calm; the monitor also asks for enough posts) makes it active
again (an `updated` step with `resumed`, no page unless the severity rises). States:
open (active) -> subsided -> resolved, with subsided -> active as often as the wave
comes back. None of this changes when an incident opens, escalates or resolves.

Why a fixed quiet period rather than "resolve after N calm intervals": on a bursty brand
calm stretches are short and unpredictable, so an incident that waits for N calm intervals
stays open for days and hides the next real wave (a data-dependent blackout), while a short
N pages for every burst. A fixed period bounds both: at most one new page per brand per
quiet period (escalations aside). It is also what NAB rewards, and the period was chosen
by leave-one-series-out (models/detection/RESULTS.md). The tracker knows nothing of brands
or posts: `BrandMonitor` drives it, for the pipeline and for the benchmarks alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["SEVERITIES", "LifecycleStep", "IncidentLifecycle", "open_by_severity"]

SEVERITIES = ("info", "warning", "critical")


def open_by_severity(event: str, severity: str) -> dict[str, int]:
    """Which severity the brand's incident is open at after an incident event: 1 for the
    event's own severity unless the event resolved it, 0 for every other (a subsided
    incident is still open). The values of the per-severity "incidents open" gauge.

    >>> open_by_severity("opened", "warning")
    {'info': 0, 'warning': 1, 'critical': 0}
    >>> open_by_severity("resolved", "critical")
    {'info': 0, 'warning': 0, 'critical': 0}
    """
    return {level: int(event != "resolved" and severity == level) for level in SEVERITIES}


@dataclass(frozen=True)
class LifecycleStep:
    """What happened to the incident at one interval."""

    event: str | None  # "opened", "updated", "subsided", "resolved" or None
    escalated: bool = False  # severity rose on an "updated" step
    resumed: bool = False  # an "updated" step that ends a subsided state (a renewed surge)


@dataclass
class IncidentLifecycle:
    """Open / escalate / resolve, one interval at a time.

    >>> lifecycle = IncidentLifecycle(quiet_intervals=3)
    >>> [lifecycle.step(t, t, 0).event for t in (True, True, False, False, False)]
    ['opened', None, 'subsided', 'resolved', None]
    >>> lifecycle = IncidentLifecycle(quiet_intervals=3, calm_intervals=2)
    >>> [lifecycle.step(t, t, 0).event for t in (True, False, True, False, False, False)]
    ['opened', None, None, None, 'resolved', None]
    >>> lifecycle = IncidentLifecycle(quiet_intervals=6, calm_intervals=2)
    >>> [lifecycle.step(t, t, 0).event for t in (True, False, False, True, False, False, False)]
    ['opened', None, 'subsided', 'updated', None, 'subsided', 'resolved']
    """

    quiet_intervals: int
    calm_intervals: int = 1
    is_open: bool = False
    severity: int = 0  # index into SEVERITIES
    quiet: int = 0  # calm intervals in a row while open
    opened_index: int = -1  # interval counter value when it opened
    intervals: int = 0  # intervals seen, ever
    subsided: bool = False  # open, and calm since the last surge (see the module docstring)

    def step(
        self, trigger: bool, active: bool, severity: int, surging: bool | None = None
    ) -> LifecycleStep:
        """Advance one interval. `severity` is the level this interval alone would deserve;
        `surging` whether it is a renewed surge that ends a subsided state (default: it is
        not calm). Opening, escalation and resolution do not depend on `surging`."""
        self.intervals += 1
        if not self.is_open:
            if trigger:
                self.is_open = True
                self.severity = severity
                self.quiet = 0
                self.opened_index = self.intervals
                self.subsided = False
                return LifecycleStep("opened")
            return LifecycleStep(None)
        calm = not (trigger or active)
        self.quiet = self.quiet + 1 if calm else 0
        held = self.intervals - self.opened_index
        if calm and held >= self.quiet_intervals and self.quiet >= self.calm_intervals:
            self.is_open = False
            self.subsided = False
            return LifecycleStep("resolved")
        was_subsided = self.subsided
        if was_subsided and (trigger or (not calm and (surging is None or surging))):
            self.subsided = False
        if trigger and severity > self.severity:
            self.severity = severity
            return LifecycleStep("updated", escalated=True, resumed=was_subsided)
        if was_subsided and not self.subsided:
            return LifecycleStep("updated", resumed=True)
        if not was_subsided and calm and self.quiet >= self.calm_intervals:
            # The same calm test as the resolution's: the incident would resolve now if
            # the quiet period were over.
            self.subsided = True
            return LifecycleStep("subsided")
        return LifecycleStep(None)

    def open_early(self, severity: int) -> None:
        """Open within the interval being counted (early firing); its `step` then goes on
        with the open incident (no second `opened`)."""
        self.is_open = True
        self.severity = severity
        self.quiet = 0
        self.opened_index = self.intervals + 1
        self.subsided = False

    def to_state(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_state(
        cls, state: dict[str, object], quiet_intervals: int, calm_intervals: int = 1
    ) -> IncidentLifecycle:
        lifecycle = cls(quiet_intervals=quiet_intervals, calm_intervals=calm_intervals)
        lifecycle.is_open = bool(state["is_open"])
        lifecycle.severity = int(state["severity"])  # type: ignore[call-overload]
        lifecycle.quiet = int(state["quiet"])  # type: ignore[call-overload]
        lifecycle.opened_index = int(state["opened_index"])  # type: ignore[call-overload]
        lifecycle.intervals = int(state["intervals"])  # type: ignore[call-overload]
        # States written before `subsided` existed: the calm test, as it stands.
        lifecycle.subsided = bool(
            state.get("subsided", lifecycle.is_open and lifecycle.quiet >= calm_intervals))
        return lifecycle
