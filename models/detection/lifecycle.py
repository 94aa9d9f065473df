"""Incident lifecycle with hysteresis: one wave gives one incident, resolved once.

An incident opens when an interval is surprising enough (`trigger`). It then stays open
as long as intervals remain elevated (`active`, a lower bar than the trigger: that gap is
the hysteresis), and resolves only after `quiet_intervals` calm intervals in a row, so a
wave that dips for a moment is not cut into several incidents. After it resolves, a new
incident needs a fresh trigger. The tracker knows nothing of brands or posts: the series
runner and `BrandMonitor` both drive it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["SEVERITIES", "LifecycleStep", "IncidentLifecycle"]

SEVERITIES = ("info", "warning", "critical")


@dataclass(frozen=True)
class LifecycleStep:
    """What happened to the incident at one interval."""

    event: str | None  # "opened", "updated", "resolved" or None
    escalated: bool = False  # severity rose on an "updated" step


@dataclass
class IncidentLifecycle:
    quiet_intervals: int
    is_open: bool = False
    severity: int = 0  # index into SEVERITIES
    quiet: int = 0  # calm intervals in a row while open
    opened_index: int = -1  # interval counter value when it opened
    intervals: int = 0  # intervals seen, ever

    def step(self, trigger: bool, active: bool, severity: int) -> LifecycleStep:
        """Advance one interval. `severity` is the level this interval alone would deserve."""
        self.intervals += 1
        if not self.is_open:
            if trigger:
                self.is_open = True
                self.severity = severity
                self.quiet = 0
                self.opened_index = self.intervals
                return LifecycleStep("opened")
            return LifecycleStep(None)
        if trigger or active:
            self.quiet = 0
        else:
            self.quiet += 1
            if self.quiet >= self.quiet_intervals:
                self.is_open = False
                return LifecycleStep("resolved")
        if trigger and severity > self.severity:
            self.severity = severity
            return LifecycleStep("updated", escalated=True)
        return LifecycleStep(None)

    def to_state(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, object], quiet_intervals: int) -> IncidentLifecycle:
        lifecycle = cls(quiet_intervals=quiet_intervals)
        lifecycle.is_open = bool(state["is_open"])
        lifecycle.severity = int(state["severity"])  # type: ignore[call-overload]
        lifecycle.quiet = int(state["quiet"])  # type: ignore[call-overload]
        lifecycle.opened_index = int(state["opened_index"])  # type: ignore[call-overload]
        lifecycle.intervals = int(state["intervals"])  # type: ignore[call-overload]
        return lifecycle
