"""The alerting stage on the real broker, without Faust: state, ledger and silences in
Kafka topics, receivers as real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from pipeline.notify.kafka_store import AlertWriter, aiokafka_config
from pipeline.notify.service import AlertService
from pipeline.notify.settings import AlertSettings
from pipeline.notify.silences import new_silence
from pipeline.notify.slack import SlackReceiver
from pipeline.notify.slack_bot import SlackBotReceiver
from pipeline.notify.webhook import WebhookReceiver
from pipeline.settings import Secret
from pipeline.watchlist import Owner
from tests.incidents import incident_event
from tests.integration.notify_servers import HttpStandIn, SlackApiStandIn

pytestmark = pytest.mark.integration

SETTINGS = AlertSettings(
    group_wait_s=0.5,
    repeat_interval_s=2.0,
    timeout_s=0.5,
    max_attempts=2,
    backoff_s=0.05,
    backoff_max_s=0.1,
    slack_min_interval_s=0.0,
    tick_s=0.1,
    claim_s=1.0,
)
OWNERS = {"acme": (Owner("On-call", ("pr-slack", "ops-hook"), "warning"),)}


def service(kafka_settings, slack_server, hook_server, settings=SETTINGS):
    receivers = {
        "pr-slack": SlackReceiver("pr-slack", Secret(slack_server.url("/services/T/B/x"))),
        "ops-hook": WebhookReceiver("ops-hook", Secret(hook_server.url()), Secret("k")),
    }
    return AlertService(OWNERS, receivers, settings, kafka_settings)


async def ticking(svc, seconds, assigned=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await svc.tick(assigned)
        await asyncio.sleep(SETTINGS.tick_s)
    await svc.drain(None, timeout_s=5)


async def read_all(kafka_settings, name, timeout=5.0):
    consumer = AIOKafkaConsumer(
        kafka_settings.topic(name),
        **aiokafka_config(kafka_settings),
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    records = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                break
            for messages in batch.values():
                records += [orjson.loads(m.value) for m in messages if m.value]
    finally:
        await consumer.stop()
    return records


def outcomes(ledger_records):
    """What the compacted ledger ends up saying: the last record of each key."""
    return {record["key"]: record for record in ledger_records}


def test_one_opening_a_reminder_and_one_resolution_per_receiver(kafka_settings):
    settings = kafka_settings

    async def scenario(slack, hook):
        svc = service(settings, slack, hook)
        await svc.start()
        try:
            burst = [
                incident_event(sequence=1, severity="warning"),
                incident_event(event="updated", sequence=2),
                incident_event(sequence=1, severity="warning"),
            ]  # a redelivery
            outcomes = [await svc.handle_incident(e, partition=0) for e in burst]
            assert outcomes == ["new", "new", "duplicate"]
            await ticking(svc, 1.0)
            assert len(slack.delivered()) == 1 and len(hook.delivered()) == 1
            await ticking(svc, 2.0)  # repeat interval 2 s: one reminder each
            await svc.handle_incident(incident_event(event="resolved", sequence=3), 0)
            await ticking(svc, 0.5)
            await ticking(svc, 0.5)  # nothing more once resolved and told
        finally:
            await svc.stop()
        return await read_all(settings, "alerts.log")

    with HttpStandIn() as slack, HttpStandIn() as hook:
        log = asyncio.run(scenario(slack, hook))
    kinds = [r.json()["kind"] for r in hook.delivered()]
    assert kinds == ["opened", "reminder", "resolved"]
    slack_texts = [r.json()["text"] for r in slack.delivered()]
    assert len(slack_texts) == 3
    assert slack_texts[0].startswith("[CRITICAL] ACME: Negative wave")  # folded burst
    assert slack_texts[1].startswith("[CRITICAL] ACME: Still open")
    assert slack_texts[2].startswith("[CRITICAL] ACME: Resolved")
    assert sorted((r["receiver"], r["type"], r["outcome"]) for r in log) == sorted(
        (rcv, kind, "sent")
        for rcv in ("pr-slack", "ops-hook")
        for kind in ("opened", "reminder", "resolved")
    )


def test_dead_receiver_goes_to_the_dlq_and_the_other_still_gets_its_message(kafka_settings):
    settings = kafka_settings

    async def scenario(slack, hook):
        svc = service(settings, slack, hook)
        await svc.start()
        try:
            await svc.handle_incident(incident_event(), partition=1)
            await ticking(svc, 1.0)
            assert len(hook.delivered()) == 1  # before the dead one has given up
            await ticking(svc, 1.5)
        finally:
            await svc.stop()
        return await read_all(settings, "alerts.dlq"), await read_all(settings, "alerts.ledger")

    with HttpStandIn(default="hang") as slack, HttpStandIn() as hook:
        dlq, ledger = asyncio.run(scenario(slack, hook))
        slack.release_hanging()
    (letter,) = dlq
    assert letter["receiver"] == "pr-slack" and letter["reason"] == "no answer within 0.5s"
    assert letter["attempts"] == 2 and letter["incident"]["incident_id"] == "acme-20261128T0212Z"
    assert {(e["receiver"], e["outcome"]) for e in outcomes(ledger).values()} == {
        ("pr-slack", "failed"),
        ("ops-hook", "sent"),
    }


def test_killed_between_deciding_and_sending_sends_once_after_restart(kafka_settings):
    settings = kafka_settings
    # Claims long enough to see one hold across the restart; no reminder meanwhile.
    claiming = replace(SETTINGS, claim_s=6.0, repeat_interval_s=600.0)

    async def first_life(slack, hook):
        svc = service(settings, slack, hook, claiming)
        await svc.start()
        await svc.handle_incident(incident_event(), partition=0)
        await asyncio.sleep(SETTINGS.group_wait_s)
        await svc.tick()
        await asyncio.sleep(0.2)  # decided; both requests are now hanging in the servers
        # Die without a goodbye: no drain, no ledger writes, connections dropped.
        for task, _ in list(svc.in_flight.values()):
            task.cancel()
        await svc.dispatcher.close()
        await svc.writer.stop()
        for view in (svc.states, svc.ledger_view, svc.silence_view):
            await view.stop()

    async def second_life(slack, hook):
        svc = service(settings, slack, hook, claiming)
        await svc.start()
        try:
            await ticking(svc, 0.5)
            # The first life's claims hold the keys until they expire unrenewed (claim_s).
            assert not slack.requests[1:] and not hook.requests[1:]
            await ticking(svc, claiming.claim_s + 0.5)
        finally:
            await svc.stop()

    with HttpStandIn(default="hang") as slack, HttpStandIn(default="hang") as hook:
        asyncio.run(first_life(slack, hook))
        assert len(slack.requests) == 1 and not slack.delivered()
        slack.set_default("ok")
        hook.set_default("ok")
        asyncio.run(second_life(slack, hook))
        slack.release_hanging()
        hook.release_hanging()
    assert len(slack.delivered()) == 1 and len(hook.delivered()) == 1


class RacingService(AlertService):
    """A worker whose sends wait, once decided, until the rival worker has decided too:
    the tightest race a rebalance can cause (both decide before either claim is written)."""

    def __init__(self, *args, start_line: asyncio.Barrier, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_line = start_line

    async def _claim(self, claim):
        await self.start_line.wait()
        return await super()._claim(claim)


def test_two_workers_deciding_the_same_notifications_at_once_send_each_once(kafka_settings):
    settings = kafka_settings
    slow = replace(SETTINGS, timeout_s=10.0)

    async def scenario(slack, hook):
        start_line = asyncio.Barrier(4)  # two notifications, decided by each worker
        one, two = (
            RacingService(
                OWNERS, service(settings, slack, hook).receivers, slow, settings,
                start_line=start_line,
            )
            for _ in range(2)
        )
        await one.start()
        await two.start()
        try:
            await one.handle_incident(incident_event(), partition=0)
            await two.states.sync()
            await asyncio.sleep(SETTINGS.group_wait_s)
            started = [len(await one.tick()), len(await two.tick())]
            assert started == [2, 2]  # both decided both sends
            await asyncio.sleep(3 * SETTINGS.claim_s)  # the winners renew their claims
            assert len(slack.requests) == 1 and len(hook.requests) == 1
            assert not one.in_flight.keys() & two.in_flight.keys()  # the losers gave up
            slack.release_hanging()
            hook.release_hanging()
            await asyncio.gather(one.drain(None, 5), two.drain(None, 5))
            await asyncio.gather(ticking(one, 1.0), ticking(two, 1.0))
        finally:
            await one.stop()
            await two.stop()
        return await read_all(settings, "alerts.ledger")

    with HttpStandIn(default="hold") as slack, HttpStandIn(default="hold") as hook:
        ledger = asyncio.run(scenario(slack, hook))
    assert len(slack.delivered()) == 1 and len(hook.delivered()) == 1
    final = outcomes(ledger)
    assert sorted((e["receiver"], e["outcome"]) for e in final.values()) == [
        ("ops-hook", "sent"),
        ("pr-slack", "sent"),
    ]
    # Each key saw two rival claims; the outcome carries the claim that won.
    claims = [e for e in ledger if e["outcome"] == "sending"]
    assert len({e["claim"] for e in claims}) == 4
    assert {e["claim"] for e in final.values()} <= {e["claim"] for e in claims}


def test_a_silence_suppresses_and_is_recorded(kafka_settings):
    settings = kafka_settings

    async def scenario(slack, hook):
        writer = AlertWriter(settings)
        svc = service(settings, slack, hook)
        await svc.start()
        await writer.start()
        try:
            silence = new_silence(
                "acme", 3600, "known leak, statement out", "alice", now=time.time()
            )
            await writer.write("alerts.silences", silence.id, silence.to_record())
            await svc.handle_incident(incident_event(), partition=0)
            await ticking(svc, 1.2)
        finally:
            await writer.stop()
            await svc.stop()
        return await read_all(settings, "alerts.log"), silence

    with HttpStandIn() as slack, HttpStandIn() as hook:
        log, silence = asyncio.run(scenario(slack, hook))
    assert not slack.requests and not hook.requests
    assert sorted((r["receiver"], r["outcome"]) for r in log) == [
        ("ops-hook", "silenced"),
        ("pr-slack", "silenced"),
    ]
    assert all(r["error"] == f"silence {silence.id}" for r in log)


def test_only_the_partitions_this_worker_owns(kafka_settings):
    settings = kafka_settings

    async def scenario(slack, hook):
        svc = service(settings, slack, hook)
        await svc.start()
        try:
            await svc.handle_incident(incident_event(), partition=1)
            await ticking(svc, 1.0, assigned={0})
        finally:
            await svc.stop()

    with HttpStandIn() as slack, HttpStandIn() as hook:
        asyncio.run(scenario(slack, hook))
    assert not slack.requests and not hook.requests


def test_the_slack_thread_survives_a_restart(kafka_settings):
    """Slack bot mode: the opening's ts is kept in alerts.ledger, so a restarted worker
    replies in the incident's thread and edits its opening message."""
    settings = kafka_settings
    token = "xoxb-restart-test-token"
    owners = {"acme": (Owner("On-call", ("crisis",), "info"),)}
    quiet = replace(SETTINGS, repeat_interval_s=600.0)

    def bot_service(api):
        bot = SlackBotReceiver("crisis", Secret(token), "#crisis", api.api_url())
        return AlertService(owners, {"crisis": bot}, quiet, settings,
                            timezones={("acme", "crisis"): "Europe/Paris"})

    async def life(api, events):
        svc = bot_service(api)
        await svc.start()
        try:
            for event in events:
                await svc.handle_incident(event, partition=0)
                await ticking(svc, 1.0)
        finally:
            await svc.stop()

    with SlackApiStandIn(token) as api:
        asyncio.run(life(api, [incident_event(severity="warning", storylines=True)]))
        (opening,) = api.top_level()
        asyncio.run(life(api, [  # a new worker: nothing in memory
            incident_event(event="updated", sequence=2, escalated=True, storylines=True),
            incident_event(event="resolved", sequence=3, storylines=True)]))
        assert len(api.top_level()) == 1
        replies = api.thread(opening["ts"])
        opening_now = api.messages[opening["ts"]]
    assert [r["text"].splitlines()[0] for r in replies] == [
        "[CRITICAL] ACME: Escalated to critical", "[CRITICAL] ACME: Resolved"]
    assert opening_now["edits"] == 2
    assert opening_now["text"].startswith("[CRITICAL] ACME: Resolved")


def test_each_owner_reads_the_incident_in_their_own_time_zone(kafka_settings):
    """Two owners of one brand, one in Paris (the brand's zone) and one in New York (their
    own `timezone:`): each email says the times where its readers are."""
    from agents.alert import timezones
    from pipeline.notify.email import EmailReceiver
    from pipeline.watchlist import parse_watchlist
    from tests.integration.notify_servers import SmtpStandIn

    watchlist = parse_watchlist(
        "receivers:\n"
        "  paris-mail: {type: email, to: [pr@acme.example], from: vigie@acme.example}\n"
        "  ny-mail: {type: email, to: [us@acme.example], from: vigie@acme.example}\n"
        "brands:\n"
        "  - id: acme\n    name: ACME\n    timezone: Europe/Paris\n    owners:\n"
        "      - {name: PR, receivers: [paris-mail], min_severity: info}\n"
        "      - {name: US desk, receivers: [ny-mail], min_severity: info,"
        " timezone: America/New_York}\n")

    async def scenario(smtp):
        receivers = {name: EmailReceiver(name, (f"{name}@acme.example",), "vigie@acme.example",
                                         "127.0.0.1", smtp.port)
                     for name in ("paris-mail", "ny-mail")}
        svc = AlertService({"acme": watchlist.brands["acme"].owners}, receivers, SETTINGS,
                           kafka_settings, timezones=timezones(watchlist))
        await svc.start()
        try:
            await svc.handle_incident(incident_event(), partition=0)
            await ticking(svc, 1.5)
        finally:
            await svc.stop()

    with SmtpStandIn() as smtp:
        asyncio.run(scenario(smtp))
        mails = {m.rcpt_tos[0]: m.message for m in smtp.wait_for(2)}
    # Opened at 02:12 UTC: 03:12 in Paris, 21:12 the day before in New York.
    paris, new_york = mails["paris-mail@acme.example"], mails["ny-mail@acme.example"]
    assert paris["Subject"] == "[Vigie] ACME: negative wave since 2026-11-28 03:12 CET"
    assert new_york["Subject"] == "[Vigie] ACME: negative wave since 2026-11-27 21:12 EST"
    assert "Opened at 2026-11-27 21:12 EST" in new_york.get_body(("plain",)).get_content()
