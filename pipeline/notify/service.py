"""The alerting stage without Faust: what `agents/alert.py` calls, testable on its own.

Flow and idempotency (docs/alerting.md has the full story):
1. `handle_incident` folds an incident event into the incident's state and writes the
   state to the compacted `alerts.state` topic *before returning*, so the agent's offset
   commit (which follows) never gets ahead of what was recorded. A redelivered event
   (same or lower sequence) changes nothing.
2. `tick` (every `tick_s`) syncs the ledger, asks the pure policy what is due for the
   incidents whose `incidents` partition this worker owns, and starts one task per
   notification not already in flight.
3. Each task first claims its key in the ledger and reads the ledger back: only the
   first claim in log order sends (another worker may have decided the same key during a
   rebalance). It renews the claim while it checks silences and delivers (retries,
   timeouts), then writes the outcome for the key. The ledger, not memory, says what was
   done: a worker killed mid-send stops renewing, its claim expires after `claim_s`, and
   the next owner of the partition sends the notification (once). Retries last up to
   `give_up_after_s` from the key's first claim (`first_at`, carried over by the next
   owner), so a receiver's outage of many minutes delays the message instead of losing it.
4. On partition revocation `drain` lets in-flight notifications finish (bounded) so the
   next owner sees their outcomes sooner; a send that outlasts the drain is still
   covered by its claim. On stop, what is still in flight after a short drain is
   cancelled and its claim released, so the next owner resumes it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from pipeline.deadletter import dead_letter, dead_letter_key
from pipeline.notify import telemetry
from pipeline.notify.base import Receiver
from pipeline.notify.dispatch import DeliveryResult, Dispatcher, MemoryAlertSink
from pipeline.notify.kafka_store import AlertWriter, CompactedView
from pipeline.notify.policy import (
    CLAIMED,
    AlertTimings,
    IncidentState,
    LedgerEntry,
    apply_event,
    claim_accepted,
    is_finished,
    notification_key,
    plan,
)
from pipeline.notify.render import build_message
from pipeline.notify.settings import AlertSettings
from pipeline.notify.silences import Silence, SilenceError, active_silence
from pipeline.records import SEVERITIES
from pipeline.schema import FieldError
from pipeline.settings import KafkaSettings
from pipeline.topics import (
    ALERT_TOPICS,
    ALERTS_DLQ,
    ALERTS_LEDGER,
    ALERTS_LOG,
    ALERTS_SILENCES,
    ALERTS_STATE,
    INCIDENTS,
    ensure_topics,
)

__all__ = [
    "AlertService",
    "KafkaAlertSink",
    "validate_incident",
    "send_test_alert",
    "make_test_incident",
]

log = logging.getLogger("vigie.alert")

_EVENTS = ("opened", "updated", "subsided", "resolved")
_STATUSES = ("active", "subsided", "resolved")
# 2 added `storylines` (and `expected_negative` in the trend), 3 `subsided` events and
# `status`; 1 and 2 are still read, so that events written before an upgrade are alerted on.
INCIDENT_SCHEMA_VERSIONS = (1, 2, 3)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def validate_incident(value: Any) -> list[dict[str, str]]:
    """The problems that stop us from acting on an incident event ([] when usable)."""
    if not isinstance(value, dict):
        return [{"field": "", "message": "must be a JSON object"}]
    errors = []
    for name in ("incident_id", "brand"):
        if not isinstance(value.get(name), str) or not value.get(name):
            errors.append({"field": name, "message": "must be a non-empty string"})
    if value.get("event") not in _EVENTS:
        errors.append({"field": "event", "message": f"must be one of {', '.join(_EVENTS)}"})
    sequence = value.get("sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        errors.append({"field": "sequence", "message": "must be an integer >= 0"})
    if value.get("severity") not in SEVERITIES:
        errors.append({"field": "severity", "message": f"must be one of {', '.join(SEVERITIES)}"})
    if "status" in value and value["status"] not in _STATUSES:
        errors.append({"field": "status", "message": f"must be one of {', '.join(_STATUSES)}"})
    if value.get("schema_version") not in INCIDENT_SCHEMA_VERSIONS:
        versions = ", ".join(map(str, INCIDENT_SCHEMA_VERSIONS))
        errors.append({"field": "schema_version", "message": f"must be one of {versions}"})
    return errors


class KafkaAlertSink:
    """Attempts to `alerts.log`, final failures to `alerts.dlq`, keyed by incident id."""

    def __init__(self, writer: AlertWriter) -> None:
        self.writer = writer

    async def log_attempt(self, record: dict[str, Any]) -> None:
        await self.writer.write(ALERTS_LOG, record["incident_id"], record)

    async def dead_letter(self, record: dict[str, Any]) -> None:
        telemetry.count_dead_letter(record)
        await self.writer.write(ALERTS_DLQ, record["incident_id"], record)


class AlertService:
    def __init__(
        self,
        owners_by_brand: Mapping[str, Iterable[Any]],
        receivers: Mapping[str, Receiver],
        settings: AlertSettings,
        kafka: KafkaSettings,
        clock: Callable[[], float] = time.time,
        retention_s: float = 7 * 86400.0,
        timezones: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        # (brand id, receiver) -> the time zone its readers read times in (UTC if absent)
        self.timezones = dict(timezones or {})
        self.owners_by_brand = {brand: tuple(owners) for brand, owners in owners_by_brand.items()}
        self.receivers = dict(receivers)
        self.settings = settings
        self.kafka = kafka
        self.clock = clock
        self.retention_s = retention_s
        self.timings = AlertTimings(settings.group_wait_s, settings.repeat_interval_s)
        self.ledger: dict[str, dict[str, LedgerEntry]] = {}  # incident id -> key -> entry
        self.silences: dict[str, Silence] = {}
        self.states = CompactedView(kafka, ALERTS_STATE)
        self.ledger_view = CompactedView(kafka, ALERTS_LEDGER, self._on_ledger)
        self.silence_view = CompactedView(kafka, ALERTS_SILENCES, self._on_silence)
        self.writer = AlertWriter(kafka)
        self.dispatcher = Dispatcher(self.receivers, settings, KafkaAlertSink(self.writer))
        self.in_flight: dict[str, tuple[asyncio.Task[None], int | None]] = {}

    def update_routing(
        self, owners_by_brand: Mapping[str, Iterable[Any]], receivers: Mapping[str, Receiver]
    ) -> None:
        """A new watchlist version: who owns each brand, and the receivers to reach them."""
        self.owners_by_brand = {brand: tuple(owners) for brand, owners in owners_by_brand.items()}
        self.receivers = dict(receivers)
        self.dispatcher.receivers = self.receivers

    # -- views
    def _on_ledger(self, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            for entries in self.ledger.values():
                entries.pop(key, None)
            return
        try:
            entry = LedgerEntry.from_record(value)
        except (KeyError, TypeError):
            log.error("%s: bad record for %r ignored", self.ledger_view.topic, key)
            return
        entries = self.ledger.setdefault(entry.incident_id, {})
        if claim_accepted(entries.get(key), entry):
            entries[key] = entry

    def _on_silence(self, key: str, value: dict[str, Any] | None) -> None:
        if value is None:
            self.silences.pop(key, None)
            return
        try:
            self.silences[key] = Silence.from_record(value)
        except SilenceError as exc:
            log.error("%s: bad record %r ignored: %s", self.silence_view.topic, key, exc)

    # -- life cycle
    async def start(self) -> None:
        # Blocking admin calls, once at start-up: in a thread, off the event loop.
        await asyncio.to_thread(ensure_topics, self.kafka, ALERT_TOPICS)
        await self.writer.start()
        await self.dispatcher.__aenter__()
        for view in (self.states, self.ledger_view, self.silence_view):
            await view.start()
        log.info(
            "alerting ready: %d open incident(s), %d ledger entries, %d silence(s)",
            len(self.states.values),
            sum(len(e) for e in self.ledger.values()),
            len(self.silences),
        )

    async def stop(self) -> None:
        await self.drain(None, timeout_s=5)
        # Retries may go on for an hour: hand them over rather than hold the shutdown.
        tasks = [task for task, _ in self.in_flight.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for view in (self.states, self.ledger_view, self.silence_view):
            await view.stop()
        await self.dispatcher.close()
        await self.writer.stop()

    # -- step 1: an incident event arrives
    async def handle_incident(self, value: Any, partition: int | None = None) -> str:
        """'new', 'duplicate' or 'invalid'. Returns once the state is durably recorded."""
        errors = validate_incident(value)
        if errors:
            original = value if isinstance(value, bytes) else orjson.dumps(value)
            key = str(value.get("incident_id", "")) if isinstance(value, dict) else ""
            # The one dead-letter format: bounded, however large the event was.
            letter = dead_letter(
                "alert", [FieldError(e["field"], e["message"]) for e in errors],
                key=key.encode(), original=original, topic=self.kafka.topic(INCIDENTS),
                partition=-1 if partition is None else partition, offset=-1,
                reason="invalid_incident", dlq=ALERTS_DLQ,
            )
            await self.writer.write_raw(ALERTS_DLQ, dead_letter_key(key.encode()) or b"",
                                        letter)
            log.error("incident event rejected: %s", "; ".join(e["field"] for e in errors))
            return "invalid"
        incident_id = value["incident_id"]
        stored = self.states.values.get(incident_id)
        state = IncidentState.from_record(stored) if stored else None
        new_state, changed = apply_event(state, value, self.clock(), partition)
        if not changed:
            telemetry.count("*", "*", "deduplicated")
            return "duplicate"
        record = new_state.to_record()
        await self.writer.write(ALERTS_STATE, incident_id, record)
        self.states.put_local(incident_id, record)
        if value["brand"] not in self.owners_by_brand:
            log.warning(
                "incident %s: brand %r is not in the watchlist", incident_id, value["brand"]
            )
        return "new"

    # -- step 2: what is due
    async def tick(self, assigned: set[int] | None = None) -> list[asyncio.Task[None]]:
        """Start due notifications for incidents on `assigned` partitions (None: all)."""
        await self.ledger_view.sync()
        await self.silence_view.sync()
        now = self.clock()
        started = []
        for incident_id, record in list(self.states.values.items()):
            state = IncidentState.from_record(record)
            if assigned is not None and state.partition not in assigned:
                continue
            entries = self.ledger.get(incident_id, {})
            if state.finished_at is not None:
                if now > state.finished_at + self.retention_s:
                    await self._forget(state, entries)
                continue
            if is_finished(state, entries, now):
                done = IncidentState.from_record({**record, "finished_at": now})
                await self.writer.write(ALERTS_STATE, incident_id, done.to_record())
                self.states.put_local(incident_id, done.to_record())
                continue
            owners = self.owners_by_brand.get(state.brand, ())
            for note in plan(state, entries, owners, now, self.timings,
                             self._not_told_subsided, self._edits_in_place):
                if note.key in self.in_flight:
                    continue
                task = asyncio.create_task(self._notify(note), name=f"notify:{note.key}")
                self.in_flight[note.key] = (task, state.partition)
                started.append(task)
        return started

    async def _forget(self, state: IncidentState, entries: Mapping[str, LedgerEntry]) -> None:
        for key in list(entries):
            await self.writer.write(ALERTS_LEDGER, key, None)
            self.ledger_view.put_local(key, None)
        await self.writer.write(ALERTS_STATE, state.incident_id, None)
        self.states.put_local(state.incident_id, None)
        self.ledger.pop(state.incident_id, None)

    # -- step 3: one notification
    async def _notify(self, note: Any) -> None:
        now = self.clock()
        previous = self.ledger.get(note.incident_id, {}).get(note.key)
        claim = LedgerEntry(
            note.key,
            note.incident_id,
            note.receiver,
            note.kind,
            note.sequence,
            CLAIMED,
            now,
            claim=uuid.uuid4().hex,
            until=now + self.settings.claim_s,
            # A claim that expired (its worker died mid-retry) passes on its retry window.
            first_at=previous.resumed_by(now) if previous is not None else now,
        )
        claimed = recorded = False
        renewing: asyncio.Task[None] | None = None

        async def stop_renewing() -> None:
            if renewing is not None:
                renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewing

        async def record(result: DeliveryResult) -> None:
            """The outcome in the ledger, before any follow-up of the receiver's (the
            Slack bot's edit after a reply): from here on, nothing sends it again."""
            nonlocal claimed, recorded
            await stop_renewing()  # a renewed claim must not overwrite the outcome
            entry = replace(claim, outcome=result.outcome, at=self.clock(), until=0.0,
                            thread=result.thread or "")
            # Mark it done here first: if Kafka is down, this worker still will not repeat it.
            self.ledger_view.put_local(note.key, entry.to_record())
            claimed = False  # the outcome replaces the claim: nothing left to hand over
            recorded = True
            # Shielded: a stop while it is written must not leave the key looking unsent.
            await asyncio.shield(self.writer.write(ALERTS_LEDGER, note.key, entry.to_record()))

        try:
            if not await self._claim(claim):
                log.info("notification %s is already handled by another worker", note.key)
                telemetry.count(note.receiver, self._receiver_type(note.receiver), "deduplicated")
                return
            claimed = True
            renewing = asyncio.create_task(self._keep_claim(claim), name=f"claim:{note.key}")
            try:
                result = await self._deliver(note, since=claim.first_at, on_sent=record)
            finally:
                await stop_renewing()
            if not recorded:  # failed or silenced: no follow-up ran before
                await record(result)
        except asyncio.CancelledError:
            if claimed:
                await self._release(claim)
            raise
        except Exception:
            log.exception("notification %s could not be completed", note.key)
        finally:
            self.in_flight.pop(note.key, None)

    async def _release(self, claim: LedgerEntry) -> None:
        """Let the claim expire now (stopping mid-delivery): the next owner need not wait."""
        released = replace(claim, until=self.clock())
        try:
            await asyncio.wait_for(
                self.writer.write(ALERTS_LEDGER, claim.key, released.to_record()), timeout=5
            )
        except Exception as exc:  # noqa: BLE001 - then it expires after claim_s instead
            log.warning("claim on %s not released: %s", claim.key, type(exc).__name__)
        else:
            log.info("handed over %s, still undelivered, to the next owner", claim.key)

    async def _claim(self, claim: LedgerEntry) -> bool:
        """Write the claim, read the ledger up to it: True if it is the one that counts."""
        await self.writer.write(ALERTS_LEDGER, claim.key, claim.to_record())
        await self.ledger_view.sync()
        held = self.ledger.get(claim.incident_id, {}).get(claim.key)
        return held is not None and held.claim == claim.claim and held.is_claim

    async def _keep_claim(self, claim: LedgerEntry) -> None:
        """Renew the claim while the send lasts, so that nobody else takes it over."""
        while True:
            await asyncio.sleep(self.settings.claim_s / 3)
            renewed = replace(claim, until=self.clock() + self.settings.claim_s)
            try:
                await self.writer.write(ALERTS_LEDGER, claim.key, renewed.to_record())
            except Exception as exc:  # noqa: BLE001 - retry at the next beat
                log.warning("claim on %s not renewed: %s", claim.key, type(exc).__name__)

    def _thread_of(self, incident_id: str, receiver: str) -> str | None:
        """Where this receiver's opening message about the incident is, if it said."""
        opening = self.ledger.get(incident_id, {}).get(
            notification_key(incident_id, "opened", receiver))
        return opening.thread if opening is not None and opening.thread else None

    async def _deliver(self, note: Any, since: float,
                       on_sent: Callable[[DeliveryResult], Awaitable[None]] | None = None
                       ) -> DeliveryResult:
        message = build_message(
            note.event,
            note.kind,
            note.key,
            grafana_url=self.settings.grafana_url,
            grafana_dashboard=self.settings.grafana_dashboard,
            top_posts=self.settings.top_posts,
            timezone=self.timezones.get((note.brand, note.receiver), "UTC"),
            thread=None if note.kind == "opened" else self._thread_of(note.incident_id,
                                                                     note.receiver),
        )
        silence = active_silence(self.silences.values(), note.brand, message.severity, self.clock())
        if silence is not None:
            return await self.dispatcher.record_silenced(message, note.receiver, silence.id)
        return await self.dispatcher.deliver(message, note.receiver, since=since,
                                             on_sent=on_sent)

    @property
    def _not_told_subsided(self) -> frozenset[str]:
        """Receivers that hear of an incident's openings, escalations and resolution only:
        PagerDuty (its own alert stays open until resolved; see policy.plan)."""
        return frozenset(name for name in self.receivers
                         if self._receiver_type(name) == "pagerduty")

    @property
    def _edits_in_place(self) -> frozenset[str]:
        """Receivers that can show a change of state silently (the Slack bot edits its
        opening message): they get `status` edits."""
        return frozenset(name for name, receiver in self.receivers.items()
                         if getattr(receiver, "edits_in_place", False))

    def _receiver_type(self, name: str) -> str:
        receiver = self.receivers.get(name)
        return str(getattr(receiver, "type", "unknown"))

    # -- step 4: hand over cleanly
    async def drain(self, partitions: set[int] | None, timeout_s: float | None = None) -> None:
        """Wait for in-flight notifications of these partitions (None: all) to finish."""
        tasks = [t for t, p in self.in_flight.values() if partitions is None or p in partitions]
        if not tasks:
            return
        log.info("handing over: waiting for %d in-flight notification(s)", len(tasks))
        limit = timeout_s
        if limit is None:
            limit = self.settings.give_up_after_s + self.settings.timeout_s
        done, pending = await asyncio.wait(tasks, timeout=limit)
        if pending:
            log.warning("%d notification(s) still in flight after %.0fs", len(pending), limit)


def make_test_incident(brand_id: str, brand_name: str) -> dict[str, Any]:
    """A clearly-labelled test incident for `vigie alert test`."""
    now = _now_iso()
    return {
        "schema_version": 1,
        "incident_id": f"test-{brand_id}-{uuid.uuid4().hex[:8]}",
        "brand": brand_id,
        "brand_name": brand_name,
        "event": "opened",
        "sequence": 1,
        "severity": "info",
        "escalated": False,
        "opened_at": now,
        "updated_at": now,
        "resolved_at": None,
        "interval_seconds": 60,
        "summary": "Test message from Vigie: if you read this, alerts reach you.",
        "observed": {},
        "expected": {},
        "window_minutes": 0,
        "sentiment": {},
        "top_posts": [],
        "surging_terms": [],
        "trend": [],
    }


async def send_test_alert(
    brand_id: str,
    brand_name: str,
    receiver_names: Iterable[str],
    receivers: Mapping[str, Receiver],
    settings: AlertSettings,
) -> list[DeliveryResult]:
    """Send a test message through each named receiver; nothing is written to Kafka.

    A person waits at the terminal for the verdict: retries stop after a minute at most,
    not after the hour a real notification is given.
    """
    settings = replace(settings, give_up_after_s=min(settings.give_up_after_s, 60.0))
    event = make_test_incident(brand_id, brand_name)
    names = list(dict.fromkeys(receiver_names))
    async with Dispatcher(receivers, settings, MemoryAlertSink()) as dispatcher:
        jobs = [
            (
                build_message(
                    event,
                    "test",
                    f"{event['incident_id']}:test:{name}",
                    grafana_url=settings.grafana_url,
                    grafana_dashboard=settings.grafana_dashboard,
                ),
                name,
            )
            for name in names
        ]
        return await dispatcher.deliver_many(jobs)
