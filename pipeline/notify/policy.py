"""When to tell whom: the alert policy, pure (no clock, no I/O, no Kafka).

Learnt from Alertmanager's vocabulary:
- route: a brand's owners, each with receivers and a `min_severity`;
- group: one incident (its `incident_id`) is one group; its events fold into one state;
- group wait: the first notification waits `group_wait_s` after the first event, so
  that an opening burst (opened, then updated/escalated) becomes one message;
- repeat: while the incident stays open, a reminder every `repeat_interval_s` after the
  last notification to that receiver;
- resolve: one resolution message to every receiver that was told of the incident.

What was already done is read from the ledger (one entry per notification key, written
after the attempt). Every planned notification has a stable key
`<incident_id>:<step>:<receiver>` (step = opened, escalated-<sequence>, reminder-<n>,
resolved), so that deciding twice (after a restart, a rebalance, a redelivered event)
plans the same key and the ledger makes the second one a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

__all__ = [
    "SEVERITIES",
    "AlertTimings",
    "IncidentState",
    "LedgerEntry",
    "PlannedNotification",
    "apply_event",
    "is_finished",
    "notification_key",
    "plan",
    "receivers_for",
    "severity_at_least",
]

SEVERITIES = ("info", "warning", "critical")
_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


class OwnerLike(Protocol):
    receivers: Sequence[str]
    min_severity: str


def severity_at_least(severity: str, minimum: str) -> bool:
    """An unknown severity counts as the highest: better a message too many than none."""
    return _RANK.get(severity, len(SEVERITIES)) >= _RANK.get(minimum, 0)


def receivers_for(owners: Iterable[OwnerLike], severity: str) -> tuple[str, ...]:
    """The receivers of every owner whose min_severity the incident reaches, in order."""
    chosen: list[str] = []
    for owner in owners:
        if severity_at_least(severity, owner.min_severity):
            chosen.extend(r for r in owner.receivers if r not in chosen)
    return tuple(chosen)


def notification_key(incident_id: str, step: str, receiver: str) -> str:
    return f"{incident_id}:{step}:{receiver}"


@dataclass(frozen=True)
class AlertTimings:
    group_wait_s: float = 10.0
    repeat_interval_s: float = 4 * 3600.0


@dataclass(frozen=True)
class IncidentState:
    """Everything the policy needs to know about one incident (stored as a dict)."""

    incident_id: str
    brand: str
    event: dict[str, Any]  # the latest event (highest sequence)
    sequence: int
    first_seen_at: float  # when this worker group first saw the incident (epoch seconds)
    resolved: bool = False
    escalation_sequence: int = 0  # sequence of the latest escalated event, 0 if none
    partition: int | None = None  # partition of `incidents` the events came from
    finished_at: float | None = None  # resolved and everyone told: kept to ignore replays

    @property
    def severity(self) -> str:
        return str(self.event.get("severity", "warning"))

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> IncidentState:
        return cls(**{name: record[name] for name in cls.__dataclass_fields__ if name in record})


def apply_event(
    state: IncidentState | None, event: Mapping[str, Any], now: float, partition: int | None
) -> tuple[IncidentState, bool]:
    """Fold an incident event into the state; (state, False) when it brings nothing new.

    An event whose sequence is not above the last one seen is a redelivery (or arrived
    out of order) and changes nothing: that is the deduplication of incident events.
    """
    sequence = int(event["sequence"])
    if state is not None and (sequence <= state.sequence or state.finished_at is not None):
        return state, False
    escalated = bool(event.get("escalated")) and event.get("event") == "updated"
    previous_escalation = state.escalation_sequence if state else 0
    return (
        IncidentState(
            incident_id=str(event["incident_id"]),
            brand=str(event["brand"]),
            event=dict(event),
            sequence=sequence,
            first_seen_at=state.first_seen_at if state else now,
            resolved=(state.resolved if state else False) or event.get("event") == "resolved",
            escalation_sequence=sequence if escalated else previous_escalation,
            partition=partition if partition is not None else (state.partition if state else None),
        ),
        True,
    )


@dataclass(frozen=True)
class LedgerEntry:
    """What became of one notification key (written once the attempt is over)."""

    key: str
    incident_id: str
    receiver: str
    kind: str
    sequence: int  # the incident event sequence the message showed
    outcome: str  # sent | failed | silenced
    at: float

    def to_record(self) -> dict[str, Any]:
        return {"schema_version": 1, **asdict(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LedgerEntry:
        return cls(**{name: record[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PlannedNotification:
    key: str
    incident_id: str
    brand: str
    receiver: str
    kind: str  # opened | escalated | reminder | resolved
    sequence: int
    event: dict[str, Any]


def plan(
    state: IncidentState,
    ledger: Mapping[str, LedgerEntry],
    owners: Iterable[OwnerLike],
    now: float,
    timings: AlertTimings,
) -> list[PlannedNotification]:
    """The notifications due now for this incident, given what the ledger says was done.

    `ledger` may hold entries of other incidents; only this incident's keys are read.
    """
    mine = [e for e in ledger.values() if e.incident_id == state.incident_id]
    by_receiver: dict[str, list[LedgerEntry]] = {}
    for entry in mine:
        by_receiver.setdefault(entry.receiver, []).append(entry)

    def planned(receiver: str, kind: str, step: str) -> PlannedNotification:
        return PlannedNotification(
            key=notification_key(state.incident_id, step, receiver),
            incident_id=state.incident_id,
            brand=state.brand,
            receiver=receiver,
            kind=kind,
            sequence=state.sequence,
            event=state.event,
        )

    due: list[PlannedNotification] = []
    if state.finished_at is not None:
        return due
    if state.resolved:
        # Only those who were actually told of the incident hear that it is over.
        for receiver, entries in by_receiver.items():
            told = any(e.outcome == "sent" and e.kind != "resolved" for e in entries)
            resolved_key = notification_key(state.incident_id, "resolved", receiver)
            if told and resolved_key not in ledger:
                due.append(planned(receiver, "resolved", "resolved"))
        return due

    if now < state.first_seen_at + timings.group_wait_s:
        return due
    for receiver in receivers_for(owners, state.severity):
        entries = by_receiver.get(receiver, [])
        if notification_key(state.incident_id, "opened", receiver) not in ledger:
            # Also covers a receiver added by an escalation: its first message is an opening.
            due.append(planned(receiver, "opened", "opened"))
            continue
        shown = max(e.sequence for e in entries)
        escalation_step = f"escalated-{state.escalation_sequence}"
        if (
            state.escalation_sequence > shown
            and notification_key(state.incident_id, escalation_step, receiver) not in ledger
        ):
            due.append(planned(receiver, "escalated", escalation_step))
            continue
        last_at = max(e.at for e in entries)
        if now >= last_at + timings.repeat_interval_s:
            reminders = sum(1 for e in entries if e.kind == "reminder")
            due.append(planned(receiver, "reminder", f"reminder-{reminders + 1}"))
    return due


def is_finished(state: IncidentState, ledger: Mapping[str, LedgerEntry]) -> bool:
    """True once a resolved incident owes nobody a message (its state may be dropped)."""
    return state.resolved and not plan(state, ledger, (), float("inf"), AlertTimings())
