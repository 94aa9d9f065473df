"""When to tell whom: the alert policy, pure (no clock, no I/O, no Kafka).

Learnt from Alertmanager's vocabulary:
- route: a brand's owners, each with receivers and a `min_severity`;
- group: one incident (its `incident_id`) is one group; its events fold into one state;
- group wait: the first notification waits `group_wait_s` after the first event, so
  that an opening burst (opened, then updated/escalated) becomes one message;
- repeat: while the incident is open and *active*, a reminder every `repeat_interval_s`
  after the last notification to that receiver (and after it last became active);
- subsided: an open incident whose wave has calmed down (the detector's `subsided` event,
  `status: subsided`) gets no reminders; each receiver whose last message said the wave
  was active is told once that it subsided. A renewed surge (`status: active` again)
  sends nothing by itself (no page unless it escalates); reminders resume after
  `repeat_interval_s` of renewed activity, and the next message re-arms "subsided";
- status: a receiver that shows the incident in one place it can edit silently (the Slack
  bot's opening message) gets a `status` edit whenever the incident's state changed
  since its last message (active again, or subsided again after a flare-up) — no new
  message for anyone, but the channel never shows a state that is no longer true;
- resolve: one resolution message to every receiver that was told of the incident.

What was already done is read from the ledger (one entry per notification key, written
after the attempt). Before sending, a worker writes a *claim* for the key (outcome
`sending`, valid until `until`, renewed while the send lasts); the first claim in the
ledger's log order wins, so two workers that decide the same key at once (a rebalance
while a send hangs) send it once. A claim that was not renewed (its worker died) stops
counting at `until`, and the key is due again. Every planned notification has a stable key
`<incident_id>:<step>:<receiver>` (step = opened, escalated-<sequence>, reminder-<n>,
subsided-<sequence>, status-<sequence>, resolved), so that deciding twice (after a
restart, a rebalance, a redelivered event) plans the same key and the ledger makes the
second one a no-op.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from pipeline.records import SEVERITIES

__all__ = [
    "CLAIMED",
    "AlertTimings",
    "IncidentState",
    "LedgerEntry",
    "PlannedNotification",
    "apply_event",
    "claim_accepted",
    "event_status",
    "is_finished",
    "notification_key",
    "plan",
    "receivers_for",
    "severity_at_least",
]

CLAIMED = "sending"  # the outcome of a claim: a worker is sending this notification now
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
    subsided: bool = False  # open, but the wave has calmed down: no reminders
    # When it last became active again after subsiding (epoch seconds; 0.0: never).
    resumed_at: float = 0.0
    status_sequence: int = 0  # sequence of the event that last changed subsided <-> active

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
    subsided = event_status(event) == "subsided"
    was_subsided = state.subsided if state else False
    resumed_at = state.resumed_at if state else 0.0
    if was_subsided and not subsided:
        resumed_at = now
    status_sequence = state.status_sequence if state else 0
    if subsided != was_subsided:
        status_sequence = sequence
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
            subsided=subsided,
            resumed_at=resumed_at,
            status_sequence=status_sequence,
        ),
        True,
    )


def event_status(event: Mapping[str, Any]) -> str:
    """`active`, `subsided` or `resolved`: the event's `status`, or what an event written
    before `status` existed (schema 1 and 2) implies."""
    status = event.get("status")
    if status in ("active", "subsided", "resolved"):
        return str(status)
    return "resolved" if event.get("event") == "resolved" else "active"


@dataclass(frozen=True)
class LedgerEntry:
    """What became of one notification key: a claim while it is sent, then the outcome."""

    key: str
    incident_id: str
    receiver: str
    kind: str
    sequence: int  # the incident event sequence the message showed
    outcome: str  # sent | failed | silenced, or CLAIMED while a worker sends it
    at: float
    claim: str = ""  # id of the claim (one per send attempt), to tell concurrent claims apart
    until: float = 0.0  # a claim stops counting then, unless renewed
    thread: str = ""  # where the receiver put the message (Slack bot: "<channel>/<ts>")
    # When the key was first claimed: its retries end `give_up_after_s` later, even when a
    # worker that died mid-retry hands it to another (0.0: written before this existed).
    first_at: float = 0.0

    def resumed_by(self, now: float) -> float:
        """The first_at of a new claim on this key, made at `now` after this entry."""
        if not self.is_claim:
            return now
        return self.first_at or self.at

    @property
    def is_claim(self) -> bool:
        return self.outcome == CLAIMED

    def counts_at(self, now: float) -> bool:
        """An outcome always counts; a claim only until it expires."""
        return not self.is_claim or now < self.until

    def to_record(self) -> dict[str, Any]:
        return {"schema_version": 1, **asdict(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LedgerEntry:
        # claim/until/thread/first_at are optional: older entries lack them.
        fields = cls.__dataclass_fields__
        return cls(**{name: record[name] for name in fields if name in record})


def claim_accepted(current: LedgerEntry | None, incoming: LedgerEntry) -> bool:
    """Whether a ledger record read in log order replaces the key's current entry.

    Outcomes always do. A claim does when the key has no entry, when it renews the
    current claim (same id), or when it was made after the current claim expired. A
    claim on a key that already has an outcome, or that a live claim holds, lost the race.
    Every worker applies this rule to the same log, so all agree on who won.
    """
    if not incoming.is_claim or current is None:
        return True
    if not current.is_claim:
        return False
    return incoming.claim == current.claim or incoming.at >= current.until


@dataclass(frozen=True)
class PlannedNotification:
    key: str
    incident_id: str
    brand: str
    receiver: str
    kind: str  # opened | escalated | reminder | subsided | status | resolved
    sequence: int
    event: dict[str, Any]


def plan(
    state: IncidentState,
    ledger: Mapping[str, LedgerEntry],
    owners: Iterable[OwnerLike],
    now: float,
    timings: AlertTimings,
    not_told_subsided: Collection[str] = (),
    edits_in_place: Collection[str] = (),
) -> list[PlannedNotification]:
    """The notifications due now for this incident, given what the ledger says was done.

    `ledger` may hold entries of other incidents; only this incident's keys are read.
    A live claim counts as done (someone is sending it); an expired one as never made.
    `not_told_subsided`: receivers that get no "subsided" message (PagerDuty: a trigger
    would reopen an alert someone resolved, an acknowledge would swallow a later
    escalation); they still get no reminders while the incident has subsided.
    `edits_in_place`: receivers that get a `status` edit when the state changed since
    their last message (see the module docstring).
    """
    ledger = {
        key: entry
        for key, entry in ledger.items()
        if entry.incident_id == state.incident_id and entry.counts_at(now)
    }
    mine = list(ledger.values())
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
        if any(e.is_claim and e.kind != "resolved" for e in mine):
            return due  # a message still being sent may turn a receiver into one to tell
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
        if any(e.is_claim for e in entries):
            continue  # its message in flight first (a Slack reply or edit needs the opening)
        # What the receiver was told (a status edit tells nobody anything new).
        last = max((e for e in entries if e.kind != "status"), key=lambda e: e.at)
        if state.subsided:
            # Told once, and only if its last message said the wave was active (a wave
            # that flares up and calms down again between two messages is not news).
            if (receiver not in not_told_subsided and last.kind != "subsided"
                    and last.sequence < state.sequence):
                due.append(planned(receiver, "subsided", f"subsided-{state.sequence}"))
                continue
        elif now >= max(last.at, state.resumed_at) + timings.repeat_interval_s:
            reminders = sum(1 for e in entries if e.kind == "reminder")
            due.append(planned(receiver, "reminder", f"reminder-{reminders + 1}"))
            continue
        if receiver in edits_in_place and state.status_sequence > shown:
            due.append(planned(receiver, "status", f"status-{state.status_sequence}"))
    return due


def is_finished(state: IncidentState, ledger: Mapping[str, LedgerEntry], now: float) -> bool:
    """True once a resolved incident owes nobody a message (its state may be dropped)."""
    if not state.resolved:
        return False
    sending = any(
        e.incident_id == state.incident_id and e.is_claim and e.counts_at(now)
        for e in ledger.values()
    )
    return not sending and not plan(state, ledger, (), now, AlertTimings())
