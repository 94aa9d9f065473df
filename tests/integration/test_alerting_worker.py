"""The alert agent inside the real `vigie worker`, on the real broker.

Incident events (docs/records.md) go into `incidents`; stand-in Slack, webhook and SMTP
servers on 127.0.0.1 receive what the worker sends. Intervals are made small via env.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests.incidents import incident_event
from tests.integration.conftest import consume, vigie_command
from tests.integration.notify_servers import HttpStandIn, SmtpStandIn

pytestmark = pytest.mark.integration

FAST_ALERTS = {
    "VIGIE_ALERT_GROUP_WAIT_S": "1",
    "VIGIE_ALERT_REPEAT_INTERVAL_S": "6",
    "VIGIE_ALERT_TIMEOUT_S": "1",
    "VIGIE_ALERT_MAX_ATTEMPTS": "2",
    "VIGIE_ALERT_BACKOFF_S": "0.1",
    "VIGIE_ALERT_TICK_S": "0.2",
    "VIGIE_SLACK_MIN_INTERVAL_S": "0.1",
    "VIGIE_SESSION_TIMEOUT_S": "6",
    "VIGIE_ALERT_CLAIM_S": "2",
    # Only the alert agent: these tests feed `incidents` directly, no model needed.
    "VIGIE_AGENTS": "alert",
}


def watchlist(
    tmp_path: Path,
    slack: HttpStandIn,
    hook: HttpStandIn,
    smtp_port: int,
    dead: HttpStandIn | None = None,
) -> Path:
    dead_receiver = (
        f'  dead-hook: {{type: webhook, url: "{dead.url()}", secret_env: T_HOOK_SECRET}}\n'
        if dead
        else ""
    )
    dead_owner = (
        "      - {name: Legacy, receivers: [dead-hook], min_severity: info}\n" if dead else ""
    )
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "version: 1\n"
        "receivers:\n"
        "  pr-slack: {type: slack, url_env: T_SLACK_URL}\n"
        f'  ops-hook: {{type: webhook, url: "{hook.url()}", secret_env: T_HOOK_SECRET}}\n'
        f"  pr-email: {{type: email, to: [pr@acme.example], from: vigie@acme.example,"
        f" host: 127.0.0.1, port: {smtp_port}, security: none}}\n" + dead_receiver + "brands:\n"
        "  - id: acme\n"
        "    name: ACME\n"
        "    owners:\n"
        "      - {name: PR team, receivers: [pr-email], min_severity: warning}\n"
        "      - {name: On-call, receivers: [pr-slack, ops-hook], min_severity: critical}\n"
        + dead_owner
        + "  - id: hushed\n"
        "    name: Hushed Corp\n"
        "    owners:\n"
        "      - {name: PR team, receivers: [ops-hook], min_severity: info}\n"
    )
    return path


def env_for(worker_env, path, slack):
    return {
        **worker_env,
        **FAST_ALERTS,
        "VIGIE_WATCHLIST": str(path),
        "T_SLACK_URL": slack.url("/services/T1/B1/secret"),
        "T_HOOK_SECRET": "hook-secret",
    }


def send_incidents(kafka_settings, *events):
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    for event in events:
        producer.send(
            kafka_settings.topic("incidents"),
            key=event["brand"].encode(),
            value=orjson.dumps(event),
        )
    producer.flush()
    producer.close()


def test_worker_tells_each_receiver_once_reminds_resolves_and_dead_letters(
    kafka_settings, worker_env, start_worker, tmp_path
):
    with (
        HttpStandIn() as slack,
        HttpStandIn() as hook,
        HttpStandIn(default="hang") as dead,
        SmtpStandIn() as smtp,
    ):
        env = env_for(worker_env, watchlist(tmp_path, slack, hook, smtp.port, dead), slack)
        # A silence for one brand, made with the CLI before the worker starts.
        added = subprocess.run(
            [
                *vigie_command(),
                "silence",
                "add",
                "--brand",
                "hushed",
                "--for",
                "1h",
                "--reason",
                "statement already out",
                "--by",
                "test",
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        silence_id = orjson.loads(added.stdout)["id"]
        start_worker(env)
        opened = incident_event(sequence=1, severity="warning")
        escalated = incident_event(event="updated", sequence=2, escalated=True)
        hushed = incident_event(incident_id="hushed-1", brand="hushed", brand_name="Hushed Corp")
        send_incidents(kafka_settings, opened, escalated, opened, hushed)  # burst + a repeat

        slack.wait_for(1, timeout=30)
        hook.wait_for(1, timeout=10)
        smtp.wait_for(1, timeout=10)
        time.sleep(2.5)  # the group wait has long passed: still one message each
        assert len(slack.delivered()) == len(hook.delivered()) == len(smtp.mails) == 1
        first = slack.delivered()[0].json()
        assert first["text"].startswith("[CRITICAL] ACME: Negative wave")  # the folded burst
        assert "312 negative posts in 10 min, 14x normal; reach 2.1M" in first["text"]
        assert "https://x.com/jdoe/status/1863012345" in first["text"]
        assert "/d/vigie-brands/vigie-brands?var-brand=acme" in first["text"]
        assert smtp.mails[0].message["Subject"] == (
            "[Vigie] ACME: negative wave since 2026-11-28 02:12 UTC")

        slack.wait_for(2, timeout=15)  # the reminder after the 6 s repeat interval
        assert slack.delivered()[1].json()["text"].startswith("[CRITICAL] ACME: Still open")
        send_incidents(kafka_settings, incident_event(event="resolved", sequence=3))
        hook.wait_for(3, timeout=15)
        slack.wait_for(3, timeout=15)
        smtp.wait_for(3, timeout=15)
        time.sleep(2)
        hook_kinds = [r.json()["kind"] for r in hook.delivered()]
        assert hook_kinds == ["opened", "reminder", "resolved"]
        assert len(slack.delivered()) == 3 and len(smtp.mails) == 3
        assert [r.json()["incident_id"] for r in hook.delivered()].count("hushed-1") == 0
        dead.release_hanging()

    dlq = [orjson.loads(r.value) for r in consume(kafka_settings, "alerts.dlq", 1, idle_s=1)]
    assert {(d["receiver"], d["type"]) for d in dlq} >= {("dead-hook", "opened")}
    assert all(d["reason"] == "no answer within 1s" for d in dlq)
    log = [orjson.loads(r.value) for r in consume(kafka_settings, "alerts.log", 1, idle_s=1)]
    silenced = [r for r in log if r["outcome"] == "silenced"]
    # The opening (and, 6 s later, its reminder) recorded as silenced, never sent.
    assert {(r["incident_id"], r["receiver"]) for r in silenced} == {("hushed-1", "ops-hook")}
    assert silenced[0]["type"] == "opened"
    assert all(r["error"] == f"silence {silence_id}" for r in silenced)
    sent = sorted(
        (r["receiver"], r["type"])
        for r in log
        if r["outcome"] == "sent" and r["incident_id"] == opened["incident_id"]
    )
    assert sent == sorted(
        (rcv, kind)
        for rcv in ("pr-slack", "ops-hook", "pr-email")
        for kind in ("opened", "reminder", "resolved")
    )


def test_worker_killed_between_deciding_and_sending_sends_once_after_restart(
    kafka_settings, worker_env, start_worker, tmp_path
):
    with (
        HttpStandIn(default="hang") as slack,
        HttpStandIn(default="hang") as hook,
        SmtpStandIn() as smtp,
    ):
        env = env_for(worker_env, watchlist(tmp_path, slack, hook, smtp.port), slack)
        env["VIGIE_ALERT_TIMEOUT_S"] = "30"  # the first life must still be sending when killed
        env["VIGIE_ALERT_REPEAT_INTERVAL_S"] = "600"  # no reminder during this test
        worker = start_worker(env)
        send_incidents(kafka_settings, incident_event(sequence=1, severity="critical"))
        slack.wait_for(1, timeout=30, delivered=False)
        hook.wait_for(1, timeout=10, delivered=False)
        # The email (a live receiver) went out; wait until its outcome is in the ledger, so
        # that only the two hanging sends are "claimed but not sent" at the kill.
        deadline = time.monotonic() + 20
        while True:
            ledger = [
                orjson.loads(r.value)
                for r in consume(kafka_settings, "alerts.ledger", timeout_s=2, idle_s=0.5)
            ]
            outcomes = {e["receiver"]: e["outcome"] for e in ledger}
            if outcomes.get("pr-email") == "sent" or time.monotonic() > deadline:
                break
        assert outcomes == {"pr-email": "sent", "pr-slack": "sending", "ops-hook": "sending"}
        worker.kill()  # SIGKILL while both sends are in flight: no outcome recorded
        assert not slack.delivered() and not hook.delivered()
        slack.set_default("ok")
        hook.set_default("ok")
        slack.release_hanging()
        hook.release_hanging()
        smtp_before = len(smtp.mails)
        start_worker(env)
        slack.wait_for(1, timeout=60)
        hook.wait_for(1, timeout=10)
        time.sleep(3)
        assert len(slack.delivered()) == 1 and len(hook.delivered()) == 1
        # The email went out in the first life (recorded in the ledger): not sent again.
        assert smtp_before == 1 and len(smtp.mails) == 1


# One brand per partition of `incidents` (kafka-python's murmur2 partitioner, 4 partitions),
# so that whichever partitions a rebalance moves, some of them have sends in flight.
BRANDS_ON_EACH_PARTITION = ("brand0", "brand1", "brand3", "brand9")


def wait_for_log(worker, text, timeout):
    deadline = time.monotonic() + timeout
    while text not in worker.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not in the worker log:\n{worker.log()[-5000:]}")
        time.sleep(0.1)


def test_a_rebalance_in_the_middle_of_sending_sends_nothing_twice(
    kafka_settings, worker_env, start_worker, tmp_path
):
    from tests.integration.conftest import free_port

    assert kafka_settings.partitions == 4
    # Every send is held until the test lets it go: longer than the first worker may wait
    # at the hand-over (0.8 x the 6 s session timeout) and than several claim periods.
    with HttpStandIn(default="hold") as hook:
        path = tmp_path / "watchlist.yaml"
        path.write_text(
            "version: 1\nreceivers:\n"
            f'  ops-hook: {{type: webhook, url: "{hook.url()}", secret_env: T_HOOK_SECRET}}\n'
            "brands:\n"
            + "".join(
                f"  - id: {b}\n    name: {b.upper()}\n    owners:\n"
                "      - {name: Ops, receivers: [ops-hook], min_severity: info}\n"
                for b in BRANDS_ON_EACH_PARTITION
            )
        )
        env = {
            **worker_env,
            **FAST_ALERTS,
            "VIGIE_WATCHLIST": str(path),
            "T_HOOK_SECRET": "hook-secret",
            "VIGIE_ALERT_TIMEOUT_S": "60",
            "VIGIE_ALERT_REPEAT_INTERVAL_S": "600",
        }
        first = start_worker(env)
        send_incidents(
            kafka_settings,
            *(
                incident_event(incident_id=f"{b}-1", brand=b, brand_name=b.upper())
                for b in BRANDS_ON_EACH_PARTITION
            ),
        )
        hook.wait_for(4, timeout=30, delivered=False)  # all four sends are in flight
        second = {
            **env,
            "VIGIE_WEB_PORT": str(free_port()),
            "VIGIE_STATE_DIR": str(tmp_path / "second-worker"),
        }
        start_worker(second)  # joins the group: partitions move while sends are in flight
        # The first worker gives up partitions whose sends hang, and stops waiting for them.
        wait_for_log(first, "handing over: waiting for", timeout=60)
        wait_for_log(first, "still in flight after", timeout=30)
        # The second worker now owns some of those incidents and finds their notifications
        # due; their claims (renewed by the first worker) must keep it from sending them.
        time.sleep(3 * float(FAST_ALERTS["VIGIE_ALERT_CLAIM_S"]))
        assert len(hook.requests) == 4
        hook.release_hanging()
        hook.wait_for(4, timeout=30)
        time.sleep(4)  # time enough for any second send to show up
        sent = sorted(r.json()["incident_id"] for r in hook.requests)
    assert sent == sorted(f"{b}-1" for b in BRANDS_ON_EACH_PARTITION)


def pending_gauge(worker, receiver="ops-hook"):
    for line in worker.metrics_text().splitlines():
        if line.startswith("vigie_notifications_pending{") and f'receiver="{receiver}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def failed_since(hook, moment):
    return [r for r in hook.requests if r.status == 503 and r.arrived > moment]


def wait_for_failures(hook, moment, count, timeout):
    deadline = time.monotonic() + timeout
    while len(failed_since(hook, moment)) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {count} attempts after the restart")
        time.sleep(0.05)


def test_a_receiver_outage_across_two_worker_restarts_delivers_once_after_it_ends(
    kafka_settings, worker_env, start_worker, tmp_path
):
    # The webhook answers 503 for the whole test until the end of the outage, through a
    # graceful restart (SIGTERM) and a crash (SIGKILL) of the worker mid-retry. With these
    # backoffs the old retry budget (5 attempts, 0.1 s doubling, 1 s cap) was spent in
    # at most 1.5 s: the page went to alerts.dlq and was never sent.
    with HttpStandIn(default="503") as hook:
        path = tmp_path / "watchlist.yaml"
        path.write_text(
            "version: 1\nreceivers:\n"
            f'  ops-hook: {{type: webhook, url: "{hook.url()}", secret_env: T_HOOK_SECRET}}\n'
            "brands:\n  - id: acme\n    name: ACME\n    owners:\n"
            "      - {name: Ops, receivers: [ops-hook], min_severity: info}\n"
        )
        env = {**worker_env, **FAST_ALERTS, "VIGIE_WATCHLIST": str(path)}
        env.pop("VIGIE_ALERT_MAX_ATTEMPTS")  # the default: no cap on attempts
        env.update(
            T_HOOK_SECRET="hook-secret",
            VIGIE_ALERT_BACKOFF_MAX_S="1",
            VIGIE_ALERT_GIVE_UP_AFTER_S="600",
            VIGIE_ALERT_REPEAT_INTERVAL_S="600",
        )
        first = start_worker(env)
        outage_began = time.monotonic()
        send_incidents(kafka_settings, incident_event(sequence=1, severity="critical"))
        wait_for_failures(hook, outage_began, 4, timeout=30)
        assert pending_gauge(first) == 1.0
        assert first.stop() == 0  # SIGTERM mid-retry: handed over, not dead-lettered
        assert "handed over" in first.log()

        restarted = time.monotonic()
        second = start_worker(env)
        wait_for_failures(hook, restarted, 3, timeout=30)  # it resumed the retries
        assert pending_gauge(second) == 1.0
        second.kill()  # a crash mid-retry: its claim expires, the next worker resumes

        restarted = time.monotonic()
        third = start_worker(env)
        wait_for_failures(hook, restarted, 3, timeout=30)
        assert pending_gauge(third) == 1.0
        outage_s = time.monotonic() - outage_began
        hook.set_default("ok")  # the receiver is back
        back = time.monotonic()
        (delivered,) = hook.wait_for(1, timeout=10)
        time.sleep(4)  # time enough for a second delivery to show up
        assert len(hook.delivered()) == 1
        assert delivered.arrived - back < 2.0  # within about one backoff cap of the end
        assert pending_gauge(third) == 0.0
        assert delivered.json()["incident_id"] == "acme-20261128T0212Z"

    assert outage_s > 10  # several times the old budget
    dlq = consume(kafka_settings, "alerts.dlq", timeout_s=3, idle_s=1)
    assert dlq == []
    ledger = [orjson.loads(r.value) for r in consume(kafka_settings, "alerts.ledger", idle_s=1)]
    claims = [e for e in ledger if e["outcome"] == "sending"]
    final = ledger[-1]
    assert final["outcome"] == "sent"
    # Three workers, one retry window: every claim carries the first claim's start.
    assert {e["first_at"] for e in claims} == {final["first_at"]} == {claims[0]["at"]}
