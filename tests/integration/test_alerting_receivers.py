"""Receivers and delivery against real servers on 127.0.0.1 (no Kafka needed).

HTTP stand-ins for Slack, webhook and PagerDuty answer 200, 429 with Retry-After, 500 or
hang; a real aiosmtpd server receives the mail, in plain SMTP, STARTTLS and TLS.
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata

import pytest
from prometheus_client import REGISTRY

from pipeline.notify.dispatch import Dispatcher, MemoryAlertSink
from pipeline.notify.email import EmailReceiver
from pipeline.notify.pagerduty import PagerDutyReceiver
from pipeline.notify.render import build_message
from pipeline.notify.settings import AlertSettings
from pipeline.notify.slack import SlackReceiver
from pipeline.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from pipeline.settings import Secret
from tests.incidents import incident_event
from tests.integration.notify_servers import HttpStandIn, SmtpStandIn, self_signed_cert

FAST = AlertSettings(
    timeout_s=0.5,
    max_attempts=3,
    backoff_s=0.05,
    backoff_max_s=0.2,
    retry_after_max_s=5,
    slack_min_interval_s=0.0,
)
SLACK_TOKEN = "T0001/B0002/xoxSECRETslacktoken"
HOOK_SECRET = "whsec-very-secret-value"
PD_KEY = "R0UT1NGKEYsecret0000000000000000"


def message(kind="opened", receiver="r", **event_fields):
    event = incident_event(**event_fields)
    return build_message(
        event,
        kind,
        f"{event['incident_id']}:{kind}:{receiver}",
        grafana_url="http://grafana.local:3000",
        top_posts=5,
    )


def deliver(receivers, jobs, settings=FAST):
    sink = MemoryAlertSink()

    async def run():
        async with Dispatcher({r.name: r for r in receivers}, settings, sink) as dispatcher:
            return await dispatcher.deliver_many(jobs)

    return asyncio.run(run()), sink


@pytest.fixture
def http():
    with HttpStandIn() as server:
        yield server


def slack(server, name="pr-slack"):
    return SlackReceiver(name, Secret(server.url(f"/services/{SLACK_TOKEN}")))


def test_slack_gets_block_kit_with_the_evidence(http):
    results, sink = deliver([slack(http)], [(message(), "pr-slack")])
    assert [r.outcome for r in results] == ["sent"]
    (request,) = http.delivered()
    body = request.json()
    assert "312 negative posts in 10 min, 14x normal; reach 2.1M" in body["text"]
    blocks = str(body["blocks"])
    assert "[CRITICAL] ACME: Negative wave" in blocks
    assert "<https://x.com/jdoe/status/1863012345|J. Doe (@jdoe) (1.2M followers)>" in blocks
    assert "ACME leaked customer data &lt;again&gt; &amp; nobody told us" in blocks
    assert "/d/vigie-brands/vigie-brands?var-brand=acme&amp;from=" in blocks or (
        "/d/vigie-brands/vigie-brands?var-brand=acme&from=" in blocks
    )
    assert "#acmeleaks ×35" in blocks
    assert [a["outcome"] for a in sink.attempts] == ["sent"]


def test_429_waits_retry_after_then_delivers(http):
    http.answer("429:1")
    started = time.monotonic()
    results, sink = deliver([slack(http)], [(message(), "pr-slack")])
    assert results[0].outcome == "sent" and results[0].attempts == 2
    first, second = http.requests
    assert second.arrived - first.arrived >= 0.95  # Retry-After: 1 honoured
    assert time.monotonic() - started < 5
    assert [(a["attempt"], a["outcome"], a["status"]) for a in sink.attempts] == [
        (1, "retried", 429),
        (2, "sent", 200),
    ]


def test_slack_sends_at_most_one_message_per_interval_per_webhook(http):
    settings = AlertSettings(**{**FAST.__dict__, "slack_min_interval_s": 0.3})
    jobs = [(message(receiver=f"n{i}"), "pr-slack") for i in range(4)]
    results, _ = deliver([slack(http)], jobs, settings)
    assert all(r.outcome == "sent" for r in results)
    arrivals = sorted(r.arrived for r in http.requests)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert len(gaps) == 3 and min(gaps) >= 0.28


def test_500_is_retried_and_the_webhook_signature_verifies(http):
    http.answer("500", "500")
    from pipeline.notify.webhook import WebhookReceiver

    hook = WebhookReceiver("ops-hook", Secret(http.url("/hook")), Secret(HOOK_SECRET))
    results, sink = deliver([hook], [(message(receiver="ops-hook"), "ops-hook")])
    assert results[0].outcome == "sent" and results[0].attempts == 3
    assert [a["outcome"] for a in sink.attempts] == ["retried", "retried", "sent"]
    (request,) = http.delivered()
    timestamp = request.headers[TIMESTAMP_HEADER]
    signature = request.headers[SIGNATURE_HEADER]
    assert verify_signature(HOOK_SECRET, timestamp, request.body, signature, now=time.time())
    assert not verify_signature("wrong", timestamp, request.body, signature, now=time.time())
    body = request.json()
    assert body["incident_id"] == "acme-20261128T0212Z" and body["kind"] == "opened"
    assert body["top_posts"][0]["url"] == "https://x.com/jdoe/status/1863012345"


def test_a_hanging_receiver_ends_in_the_dead_letters_while_others_get_theirs():
    from pipeline.notify.webhook import WebhookReceiver

    with HttpStandIn(default="hang") as dead, HttpStandIn() as alive, HttpStandIn() as hook:
        receivers = [
            SlackReceiver("dead-slack", Secret(dead.url(f"/services/{SLACK_TOKEN}"))),
            slack(alive),
            WebhookReceiver("ops-hook", Secret(hook.url()), Secret(HOOK_SECRET)),
        ]
        jobs = [(message(receiver=r.name), r.name) for r in receivers]
        started = time.monotonic()
        settings = AlertSettings(**{**FAST.__dict__, "max_attempts": 2})

        async def run():
            sink = MemoryAlertSink()
            async with Dispatcher({r.name: r for r in receivers}, settings, sink) as d:
                tasks = [asyncio.create_task(d.deliver(m, r)) for m, r in jobs]
                # The live receivers are done long before the dead one times out.
                await asyncio.wait(tasks[1:])
                live_done = time.monotonic() - started
                return [await t for t in tasks], sink, live_done

        results, sink, live_done = asyncio.run(run())
        dead.release_hanging()
    assert live_done < 0.4
    assert [r.outcome for r in results] == ["failed", "sent", "sent"]
    assert len(alive.delivered()) == 1 and len(hook.delivered()) == 1
    (letter,) = sink.dead_letters
    assert letter["receiver"] == "dead-slack" and letter["attempts"] == 2
    assert letter["reason"] == "no answer within 0.5s"
    assert letter["incident"]["incident_id"] == "acme-20261128T0212Z"


def test_a_client_error_is_not_retried(http):
    http.set_default("404")
    results, sink = deliver([slack(http)], [(message(), "pr-slack")])
    assert results[0].outcome == "failed" and results[0].attempts == 1
    assert sink.dead_letters[0]["status"] == 404


def test_pagerduty_trigger_and_resolve_share_the_incident_dedup_key():
    with HttpStandIn(ok_status=202, ok_body='{"status":"success"}') as pd:
        receiver = PagerDutyReceiver("oncall-pd", Secret(PD_KEY), url=pd.url("/v2/enqueue"))
        results, _ = deliver(
            [receiver],
            [(message("opened", "oncall-pd"), "oncall-pd")],
        )
        results2, _ = deliver(
            [receiver],
            [(message("resolved", "oncall-pd", event="resolved", sequence=5), "oncall-pd")],
        )
    assert results[0].outcome == results2[0].outcome == "sent"
    trigger, resolve = (r.json() for r in pd.delivered())
    assert trigger["event_action"] == "trigger" and resolve["event_action"] == "resolve"
    assert trigger["dedup_key"] == resolve["dedup_key"] == "acme-20261128T0212Z"
    assert trigger["routing_key"] == PD_KEY
    assert trigger["payload"]["severity"] == "critical"
    assert "312 negative posts" in trigger["payload"]["summary"]
    assert trigger["payload"]["source"] == "vigie/acme"
    assert trigger["links"][0]["href"].startswith("http://grafana.local:3000/d/vigie-brands/")


def mail_receiver(server, **fields):
    return EmailReceiver(
        name="pr-email",
        to=("pr@acme.example",),
        sender="vigie@acme.example",
        host="127.0.0.1",
        port=server.port,
        timeout_s=5,
        **fields,
    )


def test_email_is_multipart_with_the_same_content_and_a_clear_subject():
    with SmtpStandIn() as smtp:
        results, _ = deliver(
            [mail_receiver(smtp)],
            [(message(), "pr-email")],
            AlertSettings(**{**FAST.__dict__, "timeout_s": 5}),
        )
        (mail,) = smtp.wait_for(1)
    assert results[0].outcome == "sent"
    assert mail.rcpt_tos == ["pr@acme.example"]
    assert mail.message["Subject"] == "[Vigie] ACME: negative wave since 2026-11-28 02:12 UTC"
    text = mail.message.get_body(("plain",)).get_content()
    page = mail.message.get_body(("html",)).get_content()
    assert text.splitlines()[0] == "[CRITICAL] ACME: Negative wave"  # the state: first line
    for part in (text, page):
        assert "312 negative posts in 10 min, 14x normal; reach 2.1M" in part
        assert "https://x.com/jdoe/status/1863012345" in part
        assert "/d/vigie-brands/vigie-brands?var-brand=acme" in part
    assert "ACME leaked customer data <again> & nobody told us" in text
    assert "ACME leaked customer data &lt;again&gt; &amp; nobody told us" in page


def test_no_header_injection_from_brand_names_or_post_text():
    hostile = "ACME\r\nBcc: victim@evil.example\r\nX-Evil: 1"
    with SmtpStandIn() as smtp:
        results, _ = deliver(
            [mail_receiver(smtp)],
            [(message(brand_name=hostile, incident_id="acme-1\nBcc: x@evil.example"), "pr-email")],
            AlertSettings(**{**FAST.__dict__, "timeout_s": 5}),
        )
        (mail,) = smtp.wait_for(1)
    assert results[0].outcome == "sent"
    assert mail.rcpt_tos == ["pr@acme.example"]
    assert mail.message["Bcc"] is None and mail.message["X-Evil"] is None
    assert "\n" not in mail.message["Subject"]
    assert "ACME Bcc: victim@evil.example" in mail.message["Subject"]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_tls_with_login(tmp_path, security):
    cert = self_signed_cert(tmp_path)
    with SmtpStandIn(security, users={"vigie": "s3cret-pw"}, cert=cert) as smtp:
        receiver = mail_receiver(
            smtp,
            security=security,
            username="vigie",
            password=Secret("s3cret-pw"),
            ca_file=str(cert[0]),
        )
        results, _ = deliver(
            [receiver],
            [(message(), "pr-email")],
            AlertSettings(**{**FAST.__dict__, "timeout_s": 5}),
        )
        (mail,) = smtp.wait_for(1)
    assert results[0].outcome == "sent"
    assert mail.authenticated_as == "vigie" and mail.over_tls


def test_secrets_never_reach_logs_records_or_errors(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    from pipeline.notify.webhook import WebhookReceiver

    cert = self_signed_cert(tmp_path)
    with (
        HttpStandIn(default="500") as http,
        SmtpStandIn("starttls", users={"vigie": "right-password"}, cert=cert) as smtp,
    ):
        closed = HttpStandIn().start()
        closed_url = closed.url(f"/services/{SLACK_TOKEN}")
        closed.stop()  # nothing listens there any more: connection refused
        receivers = [
            SlackReceiver("pr-slack", Secret(http.url(f"/services/{SLACK_TOKEN}"))),
            SlackReceiver("gone-slack", Secret(closed_url)),
            WebhookReceiver(
                "ops-hook", Secret(http.url(f"/hook?token={HOOK_SECRET}")), Secret(HOOK_SECRET)
            ),
            PagerDutyReceiver("oncall-pd", Secret(PD_KEY), url=http.url("/v2/enqueue")),
            mail_receiver(
                smtp,
                security="starttls",
                username="vigie",
                password=Secret("wrong-SECRET-pw"),
                ca_file=str(cert[0]),
            ),
        ]
        jobs = [(message(receiver=r.name), r.name) for r in receivers]
        results, sink = deliver(receivers, jobs, AlertSettings(**{**FAST.__dict__, "timeout_s": 5}))
    assert all(r.outcome == "failed" for r in results)
    assert results[4].status == 535  # refused login is final, not retried
    # The SMTP stand-in's own protocol log (the server's side) is not ours to judge.
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.")]
    everything = " ".join(
        [
            *ours,
            repr(receivers),
            str(sink.attempts),
            str(sink.dead_letters),
            str([r.error for r in results]),
        ]
    )
    for secret in (SLACK_TOKEN, "xoxSECRETslacktoken", HOOK_SECRET, PD_KEY, "wrong-SECRET-pw"):
        assert secret not in everything
    assert "HTTP 500" in everything and "ClientConnectorError" in everything


def hostile_message(receiver):
    """A wave whose top post was written by an attacker: Slack commands in the text and
    a right-to-left override in the author's name ("Evil google.com" once reordered)."""
    event = incident_event()
    event["top_posts"][0] = {
        **event["top_posts"][0],
        "author_name": "Evil \u202emoc.elgoog\u202c",
        "author_handle": "ev\u200bil",
        "text": "<!channel> <!here> <!everyone> <@U024BE7LH> <https://evil.example|click here>",
    }
    event["brand_name"] = "AC\u2066ME\u2069"
    return build_message(
        event,
        "opened",
        f"{event['incident_id']}:opened:{receiver}",
        grafana_url="http://grafana.local:3000",
        top_posts=5,
    )


def invisible(text):
    return [hex(ord(c)) for c in text if unicodedata.category(c) == "Cf"]


def test_slack_gets_no_mention_link_or_invisible_character_from_a_poster(http):
    results, _ = deliver([slack(http)], [(hostile_message("pr-slack"), "pr-slack")])
    assert results[0].outcome == "sent"
    (request,) = http.delivered()
    raw = request.body.decode()
    body = request.json()
    # Slack parses both the notification text and the blocks: nothing a poster wrote may
    # become a mention or a disguised link in either.
    for command in ("<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<https://evil"):
        assert command not in body["text"] and command not in str(body["blocks"])
    assert "&lt;!channel&gt;" in body["text"] and "&lt;!channel&gt;" in str(body["blocks"])
    assert invisible(raw) == [] and invisible(str(body)) == []
    assert "Evil moc.elgoog (@evil)" in body["text"]
    assert body["blocks"][0]["text"]["text"] == "[CRITICAL] ACME: Negative wave"


def test_email_subject_text_and_html_carry_no_invisible_character():
    with SmtpStandIn() as smtp:
        results, _ = deliver(
            [mail_receiver(smtp)],
            [(hostile_message("pr-email"), "pr-email")],
            AlertSettings(**{**FAST.__dict__, "timeout_s": 5}),
        )
        (mail,) = smtp.wait_for(1)
    assert results[0].outcome == "sent"
    text = mail.message.get_body(("plain",)).get_content()
    page = mail.message.get_body(("html",)).get_content()
    assert mail.message["Subject"] == "[Vigie] ACME: negative wave since 2026-11-28 02:12 UTC"
    for part in (mail.message["Subject"], text, page):
        assert invisible(part) == []
    assert "Evil moc.elgoog (@evil)" in text and "Evil moc.elgoog (@evil)" in page


def pending(receiver="pr-slack", receiver_type="slack"):
    value = REGISTRY.get_sample_value(
        "vigie_notifications_pending", {"receiver": receiver, "receiver_type": receiver_type}
    )
    return value or 0.0


def test_a_receiver_outage_longer_than_the_old_retries_delays_the_message_once(http):
    # 503 for 3 s: the old retry budget with these backoffs (5 attempts, 0.05 s doubling,
    # 0.2 s cap) was spent after about 0.5 s and the message went to the dead letters.
    outage_s = 3.0
    settings = AlertSettings(
        **{**FAST.__dict__, "max_attempts": 0, "give_up_after_s": 30, "backoff_max_s": 0.2}
    )
    http.set_default("503")
    seen_pending = []

    async def run():
        sink = MemoryAlertSink()
        async with Dispatcher({"pr-slack": slack(http)}, settings, sink) as dispatcher:
            task = asyncio.create_task(dispatcher.deliver(message(), "pr-slack"))
            await asyncio.sleep(outage_s / 2)
            seen_pending.append(pending())
            await asyncio.sleep(outage_s / 2)
            http.set_default("ok")  # the receiver is back
            back = time.monotonic()
            return await task, sink, back

    result, sink, back = asyncio.run(run())
    assert result.outcome == "sent" and sink.dead_letters == []
    assert seen_pending == [1.0] and pending() == 0.0
    (delivered,) = http.delivered()  # once
    assert delivered.arrived - back <= 0.3  # within one backoff cap of the end
    failed = [r for r in http.requests if r.status == 503]
    assert len(failed) >= 10 and failed[-1].arrived - failed[0].arrived >= outage_s - 0.5
    outcomes = [a["outcome"] for a in sink.attempts]
    assert outcomes == ["retried"] * len(failed) + ["sent"]
