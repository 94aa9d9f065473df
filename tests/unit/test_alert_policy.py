"""The alert policy: who is told what, when (pure, no clock, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from pipeline.notify.policy import (
    CLAIMED,
    AlertTimings,
    LedgerEntry,
    apply_event,
    claim_accepted,
    is_finished,
    plan,
    receivers_for,
)
from pipeline.notify.silences import (
    Silence,
    SilenceError,
    active_silence,
    new_silence,
    parse_duration,
)


@dataclass(frozen=True)
class Owner:
    name: str
    receivers: tuple[str, ...]
    min_severity: str


OWNERS = (
    Owner("PR team", ("pr-email",), "warning"),
    Owner("On-call", ("pr-slack", "oncall-pd"), "critical"),
)
TIMINGS = AlertTimings(group_wait_s=10, repeat_interval_s=3600)
T0 = 1_000_000.0


def event(sequence, kind="opened", severity="warning", escalated=False):
    return {
        "incident_id": "acme-1",
        "brand": "acme",
        "event": kind,
        "sequence": sequence,
        "severity": severity,
        "escalated": escalated,
    }


class Ledger(dict):
    """What the dispatcher would record after each attempt."""

    def record(self, notes, at, outcome="sent"):
        for n in notes:
            self[n.key] = LedgerEntry(
                n.key, n.incident_id, n.receiver, n.kind, n.sequence, outcome, at
            )


def keys(notes):
    return sorted(n.key for n in notes)


def test_routing_by_min_severity():
    assert receivers_for(OWNERS, "info") == ()
    assert receivers_for(OWNERS, "warning") == ("pr-email",)
    assert receivers_for(OWNERS, "critical") == ("pr-email", "pr-slack", "oncall-pd")


def test_group_wait_folds_an_opening_burst_into_one_message():
    state, _ = apply_event(None, event(1), T0, partition=0)
    assert plan(state, {}, OWNERS, T0 + 5, TIMINGS) == []  # still waiting
    state, changed = apply_event(state, event(2, "updated"), T0 + 3, partition=0)
    assert changed
    due = plan(state, {}, OWNERS, T0 + 10, TIMINGS)
    assert keys(due) == ["acme-1:opened:pr-email"]
    assert due[0].sequence == 2  # shows the latest numbers, not the first event's


def test_redelivered_event_changes_nothing():
    state, _ = apply_event(None, event(1), T0, partition=0)
    state2, _ = apply_event(state, event(2, "updated"), T0 + 1, partition=0)
    again, changed = apply_event(state2, event(1), T0 + 2, partition=0)
    assert not changed and again == state2


def test_same_decision_twice_plans_the_same_keys_and_the_ledger_stops_repeats():
    state, _ = apply_event(None, event(1), T0, partition=0)
    first = plan(state, {}, OWNERS, T0 + 11, TIMINGS)
    assert keys(first) == keys(plan(state, {}, OWNERS, T0 + 12, TIMINGS))  # idempotent keys
    ledger = Ledger()
    ledger.record(first, T0 + 11)
    assert plan(state, ledger, OWNERS, T0 + 100, TIMINGS) == []


def test_escalation_adds_receivers_with_an_opening_and_tells_the_others():
    state, _ = apply_event(None, event(1), T0, partition=0)
    ledger = Ledger()
    ledger.record(plan(state, ledger, OWNERS, T0 + 10, TIMINGS), T0 + 10)
    state, _ = apply_event(state, event(2, "updated", "critical", escalated=True), T0 + 60, 0)
    due = plan(state, ledger, OWNERS, T0 + 61, TIMINGS)
    assert keys(due) == [
        "acme-1:escalated-2:pr-email",
        "acme-1:opened:oncall-pd",
        "acme-1:opened:pr-slack",
    ]
    ledger.record(due, T0 + 61)
    assert plan(state, ledger, OWNERS, T0 + 62, TIMINGS) == []


def test_escalation_inside_group_wait_gives_one_critical_opening():
    state, _ = apply_event(None, event(1), T0, partition=0)
    state, _ = apply_event(state, event(2, "updated", "critical", escalated=True), T0 + 2, 0)
    due = plan(state, {}, OWNERS, T0 + 10, TIMINGS)
    assert [n.kind for n in due] == ["opened"] * 3


def test_reminders_repeat_while_open_then_one_resolution():
    state, _ = apply_event(None, event(1), T0, partition=0)
    ledger = Ledger()
    ledger.record(plan(state, ledger, OWNERS, T0 + 10, TIMINGS), T0 + 10)
    assert plan(state, ledger, OWNERS, T0 + 3000, TIMINGS) == []
    due = plan(state, ledger, OWNERS, T0 + 3610, TIMINGS)
    assert keys(due) == ["acme-1:reminder-1:pr-email"]
    ledger.record(due, T0 + 3610)
    assert plan(state, ledger, OWNERS, T0 + 3700, TIMINGS) == []
    assert keys(plan(state, ledger, OWNERS, T0 + 7210, TIMINGS)) == ["acme-1:reminder-2:pr-email"]
    state, _ = apply_event(state, event(3, "resolved"), T0 + 7300, partition=0)
    due = plan(state, ledger, OWNERS, T0 + 7300, TIMINGS)
    assert keys(due) == ["acme-1:resolved:pr-email"]
    assert not is_finished(state, ledger, T0 + 7300)
    ledger.record(due, T0 + 7301)
    assert plan(state, ledger, OWNERS, T0 + 99999, TIMINGS) == []
    assert is_finished(state, ledger, T0 + 7302)


def claim(note, at, claim_id, until):
    return LedgerEntry(
        note.key, note.incident_id, note.receiver, note.kind, note.sequence, CLAIMED, at,
        claim=claim_id, until=until,
    )


def test_a_live_claim_holds_the_key_and_an_expired_one_frees_it():
    state, _ = apply_event(None, event(1), T0, partition=0)
    (opening,) = plan(state, {}, OWNERS, T0 + 10, TIMINGS)
    ledger = {opening.key: claim(opening, T0 + 10, "a", until=T0 + 25)}
    assert plan(state, ledger, OWNERS, T0 + 24, TIMINGS) == []  # someone is sending it
    # Its worker died (no renewal): the same key is due again, to be claimed anew.
    assert keys(plan(state, ledger, OWNERS, T0 + 25, TIMINGS)) == [opening.key]


def test_a_resolution_waits_for_an_opening_still_being_sent():
    opened, _ = apply_event(None, event(1), T0, partition=0)
    (opening,) = plan(opened, {}, OWNERS, T0 + 10, TIMINGS)
    ledger = Ledger({opening.key: claim(opening, T0 + 10, "a", until=T0 + 40)})
    state, _ = apply_event(opened, event(2, "resolved"), T0 + 11, partition=0)
    # Not finished: if the opening goes out, its receiver must hear of the resolution.
    assert plan(state, ledger, OWNERS, T0 + 12, TIMINGS) == []
    assert not is_finished(state, ledger, T0 + 12)
    ledger.record([opening], T0 + 13)
    assert keys(plan(state, ledger, OWNERS, T0 + 14, TIMINGS)) == ["acme-1:resolved:pr-email"]


def test_the_first_claim_in_log_order_wins_and_only_its_owner_renews_it():
    state, _ = apply_event(None, event(1), T0, partition=0)
    (opening,) = plan(state, {}, OWNERS, T0 + 10, TIMINGS)
    first = claim(opening, T0 + 10, "a", until=T0 + 25)
    rival = claim(opening, T0 + 11, "b", until=T0 + 26)
    assert claim_accepted(None, first)
    assert not claim_accepted(first, rival)  # decided at the same time: second in the log
    assert claim_accepted(first, claim(opening, T0 + 10, "a", until=T0 + 40))  # renewal
    late = claim(opening, T0 + 25, "b", until=T0 + 40)
    assert claim_accepted(first, late)  # made after the first one expired: a takeover
    sent = LedgerEntry(opening.key, "acme-1", "pr-email", "opened", 1, "sent", T0 + 12)
    assert claim_accepted(first, sent)  # an outcome always replaces the claim
    assert not claim_accepted(sent, late)  # and no claim reopens a key that has one


def test_ledger_records_written_before_claims_existed_still_read():
    old = {"schema_version": 1, "key": "k", "incident_id": "acme-1", "receiver": "pr-email",
           "kind": "opened", "sequence": 1, "outcome": "sent", "at": T0}
    entry = LedgerEntry.from_record(old)
    assert entry.outcome == "sent" and entry.claim == "" and entry.counts_at(T0 + 1e9)


def test_nobody_told_means_no_resolution():
    state, _ = apply_event(None, event(1), T0, partition=0)
    state, _ = apply_event(state, event(2, "resolved"), T0 + 3, partition=0)  # a blip
    assert plan(state, {}, OWNERS, T0 + 60, TIMINGS) == []
    ledger = Ledger()
    opened, _ = apply_event(None, event(1), T0, partition=0)
    ledger.record(plan(opened, ledger, OWNERS, T0 + 10, TIMINGS), T0 + 10, outcome="silenced")
    assert plan(state, ledger, OWNERS, T0 + 60, TIMINGS) == []


def test_failed_opening_is_not_retried_forever_but_a_reminder_comes_later():
    state, _ = apply_event(None, event(1), T0, partition=0)
    ledger = Ledger()
    ledger.record(plan(state, ledger, OWNERS, T0 + 10, TIMINGS), T0 + 10, outcome="failed")
    assert plan(state, ledger, OWNERS, T0 + 20, TIMINGS) == []
    assert keys(plan(state, ledger, OWNERS, T0 + 3611, TIMINGS)) == ["acme-1:reminder-1:pr-email"]


def test_silences_cover_brand_and_severity_at_or_below_for_their_time():
    warn_only = new_silence("acme", 7200, "known issue", "alice", now=T0, severity="warning")
    everything = new_silence("acme", 60, "maintenance", "bob", now=T0)
    assert warn_only.matches("acme", "warning", T0 + 10)
    assert warn_only.matches("acme", "info", T0 + 10)
    assert not warn_only.matches("acme", "critical", T0 + 10)
    assert not warn_only.matches("other", "warning", T0 + 10)
    assert not warn_only.matches("acme", "warning", T0 + 7200)  # ended
    assert active_silence([warn_only, everything], "acme", "critical", T0 + 30) == everything
    expired = everything.expire(T0 + 20, "carol")
    assert expired.expired_by == "carol"
    assert active_silence([expired], "acme", "critical", T0 + 30) is None
    assert Silence.from_record(warn_only.to_record()) == warn_only


def test_silence_input_errors_are_clear():
    assert parse_duration("2h") == 7200
    assert parse_duration("1d12h30m") == 131400
    for bad in ("", "2 hours", "0m", "h"):
        with pytest.raises(SilenceError, match="bad duration"):
            parse_duration(bad)
    with pytest.raises(SilenceError, match="bad brand"):
        new_silence("ACME!", 60, "x", "me", now=T0)
    with pytest.raises(SilenceError, match="bad severity"):
        new_silence("acme", 60, "x", "me", now=T0, severity="urgent")
    with pytest.raises(SilenceError, match="reason"):
        new_silence("acme", 60, " ", "me", now=T0)


def status_event(sequence, status, kind="updated", severity="critical", escalated=False):
    """A version 3 event: `status` says where the incident stands."""
    return {**event(sequence, kind, severity, escalated), "schema_version": 3,
            "status": status}


def opened_critical(ledger):
    """An incident told to all three receivers at T0 + 10."""
    state, _ = apply_event(None, status_event(1, "active", "opened"), T0, partition=0)
    ledger.record(plan(state, ledger, OWNERS, T0 + 10, TIMINGS), T0 + 10)
    return state


def test_a_subsided_incident_is_told_once_and_gets_no_reminders():
    ledger = Ledger()
    state = opened_critical(ledger)
    state, _ = apply_event(state, status_event(2, "subsided", "subsided"), T0 + 1200, 0)
    due = plan(state, ledger, OWNERS, T0 + 1201, TIMINGS, not_told_subsided={"oncall-pd"})
    # PagerDuty's alert stays as it is (a trigger could reopen it, an acknowledge would
    # swallow a later escalation); the people are told the wave calmed down.
    assert keys(due) == ["acme-1:subsided-2:pr-email", "acme-1:subsided-2:pr-slack"]
    assert {n.kind for n in due} == {"subsided"}
    ledger.record(due, T0 + 1201)
    # Two days of calm inside the quiet period: nothing, for anyone (PagerDuty included).
    for hours in range(1, 49):
        assert plan(state, ledger, OWNERS, T0 + 1201 + hours * 3600, TIMINGS,
                    not_told_subsided={"oncall-pd"}) == []
    state, _ = apply_event(state, status_event(3, "resolved", "resolved"), T0 + 2 * 86400, 0)
    due = plan(state, ledger, OWNERS, T0 + 2 * 86400, TIMINGS)
    assert keys(due) == ["acme-1:resolved:oncall-pd", "acme-1:resolved:pr-email",
                         "acme-1:resolved:pr-slack"]


def test_a_renewed_surge_sends_nothing_and_reminds_only_after_a_repeat_of_activity():
    ledger = Ledger()
    state = opened_critical(ledger)
    state, _ = apply_event(state, status_event(2, "subsided", "subsided"), T0 + 1200, 0)
    ledger.record(plan(state, ledger, OWNERS, T0 + 1201, TIMINGS), T0 + 1201)
    # Active again ten hours later, not escalated: no page, no immediate reminder even
    # though the last message is older than the repeat interval.
    resumed = T0 + 36000
    state, _ = apply_event(state, status_event(3, "active"), resumed, 0)
    assert plan(state, ledger, OWNERS, resumed + 1, TIMINGS) == []
    assert plan(state, ledger, OWNERS, resumed + 3599, TIMINGS) == []
    due = plan(state, ledger, OWNERS, resumed + 3600, TIMINGS)
    assert {n.kind for n in due} == {"reminder"} and len(due) == 3
    ledger.record(due, resumed + 3600)
    # It calms down again: a receiver whose last message said "active" hears it again.
    state, _ = apply_event(state, status_event(4, "subsided", "subsided"), resumed + 4000, 0)
    assert {n.key for n in plan(state, ledger, OWNERS, resumed + 4001, TIMINGS)} == {
        f"acme-1:subsided-4:{r}" for r in ("pr-email", "pr-slack", "oncall-pd")}


def test_a_wave_that_flares_and_calms_between_two_messages_is_not_news_again():
    ledger = Ledger()
    state = opened_critical(ledger)
    state, _ = apply_event(state, status_event(2, "subsided", "subsided"), T0 + 1200, 0)
    ledger.record(plan(state, ledger, OWNERS, T0 + 1201, TIMINGS), T0 + 1201)
    state, _ = apply_event(state, status_event(3, "active"), T0 + 2000, 0)
    state, _ = apply_event(state, status_event(4, "subsided", "subsided"), T0 + 3000, 0)
    # Nothing, then or later (the opening is past the repeat interval: no reminder either).
    assert plan(state, ledger, OWNERS, T0 + 3001, TIMINGS) == []
    assert plan(state, ledger, OWNERS, T0 + 86400, TIMINGS) == []


def test_an_escalation_of_a_subsided_incident_pages_as_before():
    ledger = Ledger()
    state, _ = apply_event(None, status_event(1, "active", "opened", "warning"), T0, 0)
    ledger.record(plan(state, ledger, OWNERS, T0 + 10, TIMINGS), T0 + 10)
    state, _ = apply_event(state, status_event(2, "subsided", "subsided", "warning"),
                           T0 + 1200, 0)
    ledger.record(plan(state, ledger, OWNERS, T0 + 1201, TIMINGS), T0 + 1201)
    state, _ = apply_event(state, status_event(3, "active", "updated", "critical",
                                               escalated=True), T0 + 5000, 0)
    due = plan(state, ledger, OWNERS, T0 + 5001, TIMINGS)
    assert keys(due) == [
        "acme-1:escalated-3:pr-email", "acme-1:opened:oncall-pd", "acme-1:opened:pr-slack"]
    ledger.record(due, T0 + 5001)
    # Their last message said "escalated": when it calms down again, they are told.
    state, _ = apply_event(state, status_event(4, "subsided", "subsided"), T0 + 6000, 0)
    assert {n.kind for n in plan(state, ledger, OWNERS, T0 + 6001, TIMINGS)} == {"subsided"}


def test_events_without_status_keep_their_reminders():
    """Version 1 and 2 events (no `status`): open means active, as before."""
    state, _ = apply_event(None, event(1), T0, partition=0)
    state, _ = apply_event(state, event(2, "updated"), T0 + 1200, partition=0)
    assert not state.subsided
    ledger = Ledger()
    ledger.record(plan(state, ledger, OWNERS, T0 + 1201, TIMINGS), T0 + 1201)
    assert keys(plan(state, ledger, OWNERS, T0 + 4801, TIMINGS)) == [
        "acme-1:reminder-1:pr-email"]


def test_the_slack_bot_s_opening_is_edited_silently_when_the_state_changes():
    """A renewed surge sends nobody a message, but the receiver that shows the incident
    in an editable message (the Slack bot) gets a silent `status` edit, and another when
    it subsides again without a message being due."""
    ledger = Ledger()
    state = opened_critical(ledger)
    editable = {"pr-slack"}

    def due(at):
        return plan(state, ledger, OWNERS, at, TIMINGS, edits_in_place=editable)

    state, _ = apply_event(state, status_event(2, "subsided", "subsided"), T0 + 1200, 0)
    told = due(T0 + 1201)
    assert {n.kind for n in told} == {"subsided"} and len(told) == 3  # a message, not an edit
    ledger.record(told, T0 + 1201)
    state, _ = apply_event(state, status_event(3, "active"), T0 + 2000, 0)
    edit = due(T0 + 2001)
    assert keys(edit) == ["acme-1:status-3:pr-slack"] and edit[0].kind == "status"
    ledger.record(edit, T0 + 2001)
    assert due(T0 + 2002) == []
    state, _ = apply_event(state, status_event(4, "subsided", "subsided"), T0 + 2500, 0)
    assert keys(due(T0 + 2501)) == ["acme-1:status-4:pr-slack"]
    ledger.record(due(T0 + 2501), T0 + 2501)
    # The edits tell nobody anything: reminders and "subsided" go by the messages.
    state, _ = apply_event(state, status_event(5, "active"), T0 + 3000, 0)
    ledger.record(due(T0 + 3001), T0 + 3001)
    assert {n.kind for n in due(T0 + 3000 + 3600)} == {"reminder"}
