"""Alerts worth reading, against real servers on 127.0.0.1: the storylines first, the
trend as an inline PNG (email) or a sparkline (Slack, PagerDuty), one email thread and one
Slack thread per incident (Slack's Web API played by a stand-in, through slack_sdk)."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import replace
from email.message import EmailMessage

import pytest
from PIL import Image

from pipeline.notify.dispatch import Dispatcher, MemoryAlertSink
from pipeline.notify.email import EmailReceiver
from pipeline.notify.pagerduty import PagerDutyReceiver
from pipeline.notify.render import build_message
from pipeline.notify.settings import AlertSettings
from pipeline.notify.slack import SlackReceiver
from pipeline.notify.slack_bot import SlackBotReceiver
from pipeline.notify.webhook import WebhookReceiver
from pipeline.settings import Secret
from tests.incidents import incident_event
from tests.integration.notify_servers import HttpStandIn, SlackApiStandIn, SmtpStandIn

FAST = AlertSettings(timeout_s=5, max_attempts=2, backoff_s=0.05, backoff_max_s=0.1,
                     slack_min_interval_s=0.0)
BOT_TOKEN = "xoxb-1111-2222-SECRETbottoken"
INCIDENT = "acme-20261128T0212Z"
# The incident's life: opened, escalated, a reminder, resolved (step names as the policy's).
LIFE = [("opened", "opened", "opened", 1, "warning"),
        ("escalated", "escalated-2", "updated", 2, "critical"),
        ("reminder", "reminder-1", "updated", 2, "critical"),
        ("resolved", "resolved", "resolved", 3, "critical")]


def message(kind, step, event, sequence, severity, receiver, thread=None, timezone="UTC"):
    incident = incident_event(event=event, sequence=sequence, severity=severity,
                              escalated=kind == "escalated", storylines=True)
    return build_message(incident, kind, f"{INCIDENT}:{step}:{receiver}",
                         grafana_url="http://grafana.local:3000", timezone=timezone,
                         thread=thread)


def deliver(receiver, msg):
    async def run():
        async with Dispatcher({receiver.name: receiver}, FAST, MemoryAlertSink()) as dispatcher:
            return await dispatcher.deliver(msg, receiver.name)

    return asyncio.run(run())


def related_png(mail: EmailMessage) -> tuple[bytes, str]:
    """The inline image of the HTML part and the Content-ID the HTML refers to."""
    html = mail.get_body(preferencelist=("html",))
    images = [part for part in mail.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    (image,) = images
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html.get_content()
    return image.get_content(), cid


def test_email_threads_the_incident_and_shows_its_curve_in_the_reader_s_time_zone():
    with SmtpStandIn() as smtp:
        receiver = EmailReceiver("pr-email", ("pr@acme.example",), "vigie@acme.example",
                                 "127.0.0.1", smtp.port)
        for kind, step, event, sequence, severity in LIFE:
            result = deliver(receiver, message(kind, step, event, sequence, severity,
                                               "pr-email", timezone="Europe/Paris"))
            assert result.outcome == "sent", result.error
        mails = [m.message for m in smtp.wait_for(4)]

    # One thread: the opening's id is derived from the incident, the others refer to it.
    opening = mails[0]["Message-ID"]
    assert opening == "<acme-20261128T0212Z.opened.pr-email@acme.example>"
    assert "In-Reply-To" not in mails[0]
    for mail in mails[1:]:
        assert mail["In-Reply-To"] == opening and mail["References"] == opening
    assert len({m["Message-ID"] for m in mails}) == 4
    # One subject (Gmail and Outlook thread by subject, modulo "Re:"), in the reader's
    # zone; each message's state is its first line.
    subject = "[Vigie] ACME: negative wave since 2026-11-28 03:12 CET"
    assert [m["Subject"] for m in mails] == [subject] + [f"Re: {subject}"] * 3
    assert [m.get_body(preferencelist=("plain",)).get_content().splitlines()[0]
            for m in mails] == ["[WARNING] ACME: Negative wave",
                                "[CRITICAL] ACME: Escalated to critical",
                                "[CRITICAL] ACME: Still open", "[CRITICAL] ACME: Resolved"]
    # A restarted worker would give the same ids (nothing random in them).
    again = deliver_id = None
    with SmtpStandIn() as smtp:
        receiver = EmailReceiver("pr-email", ("pr@acme.example",), "vigie@acme.example",
                                 "127.0.0.1", smtp.port)
        deliver(receiver, message(*LIFE[1], "pr-email"))
        again = smtp.wait_for(1)[0].message
    deliver_id = again["Message-ID"]
    assert deliver_id == mails[1]["Message-ID"] and again["In-Reply-To"] == opening

    # The plain text reads well: storylines first, times in Paris (UTC+1 in November).
    text = mails[0].get_body(preferencelist=("plain",)).get_content()
    lines = text.splitlines()
    assert lines[0] == "[WARNING] ACME: Negative wave"
    assert lines[2] == ("2 storylines: customer-data leak (78 %, started by @leaker at "
                        "03:07), price rise (22 %)")
    assert "Opened at 2026-11-28 03:12 CET" in text
    assert "Negative posts, last 120 min: " in text and "normally about 2" in text
    # Then each storyline: its share, its negative share, its reach, who started it and
    # when, its most-reached post and its most-copied text.
    rows = lines[lines.index("Storylines:") + 1:lines.index("Storylines:") + 3]
    assert rows == [
        "- customer-data leak: 78 % of negative posts (243 of 260 posts negative), reach "
        "1.9M; started by @leaker at 03:07 CET; most reached: @bignews (1.2M followers) — "
        "“EXCLUSIF : le fichier clients d'ACME revendu à des courtiers”",
        "- price rise: 22 % of negative posts (69 of 80 posts negative), reach 210k; "
        "started by @jane at 03:08 CET; most reached: @jane (300 followers) — "
        "“ACME augmente ses tarifs de 30 %”"]

    # The inline PNG is the incident's trend: a real image, quiet then a wave, marked.
    png, _ = related_png(mails[0])
    image = Image.open(io.BytesIO(png))
    image.load()
    assert image.format == "PNG" and image.size == (640, 240)
    pixels = image.convert("RGB")
    colours = pixels.getcolors(maxcolors=100_000)
    assert colours is not None and len(colours) > 50  # a drawing, not a blank
    red = sum(n for n, (r, g, b) in colours if r > 180 and g < 120 and b < 120)
    dark = sum(n for n, (r, g, b) in colours if r < 80 and g < 80 and b < 80)
    assert red > 100  # the incident's opening, marked
    # The expected line (blue, dashed) across the chart, low (normally about 2); the
    # legend's sample of it is at the top.
    blue = [x for x in range(image.size[0]) for y in range(image.size[1] // 2, image.size[1])
            if pixels.getpixel((x, y)) == (0x31, 0x82, 0xbd)]
    assert len(blue) > 100 and max(blue) - min(blue) > image.size[0] * 0.8
    assert dark > 300  # the observed line, axes and labels
    # The wave is at the right: the dark observed line climbs high only there (the
    # legend sits at the top left, left of 30 %).
    width, height = image.size
    high = [x for x in range(int(width * 0.3), width) for y in range(int(height * 0.15),
                                                                      int(height * 0.4))
            if sum(pixels.getpixel((x, y))) < 150]
    assert high and min(high) > width * 0.8


def test_slack_bot_posts_one_message_threads_updates_and_edits_it():
    with SlackApiStandIn(BOT_TOKEN) as api:
        bot = SlackBotReceiver("crisis", Secret(BOT_TOKEN), "#crisis", api.api_url())
        thread = None
        for kind, step, event, sequence, severity in LIFE:
            result = deliver(bot, message(kind, step, event, sequence, severity, "crisis",
                                          thread=thread))
            assert result.outcome == "sent", result.error
            if kind == "opened":
                thread = result.thread
        (top,) = api.top_level()
        replies = api.thread(top["ts"])
        methods = [method for method, _ in api.calls]

    assert thread == f"C0VIGIE/{top['ts']}"
    assert methods == ["chat.postMessage", "chat.postMessage", "chat.update",
                       "chat.postMessage", "chat.update", "chat.postMessage", "chat.update"]
    assert [r["text"].splitlines()[0] for r in replies] == [
        "[CRITICAL] ACME: Escalated to critical", "[CRITICAL] ACME: Still open",
        "[CRITICAL] ACME: Resolved"]
    # The channel shows where things stand: the opening message, edited at each step.
    assert top["edits"] == 3 and top["text"].startswith("[CRITICAL] ACME: Resolved")
    assert top["channel"] == "C0VIGIE"
    blocks = str(top["blocks"])
    assert "2 storylines: customer-data leak (78 %, started by @leaker at <!date^" in blocks
    assert "|02:07 UTC>), price rise (22 %)" in blocks
    assert "Open the Grafana dashboard" in blocks and "▁" in blocks


def test_slack_bot_token_never_reaches_logs_or_errors(caplog):
    caplog.set_level(logging.DEBUG)
    with SlackApiStandIn("xoxb-the-right-one") as api:
        bot = SlackBotReceiver("crisis", Secret(BOT_TOKEN), "#crisis", api.api_url())
        result = deliver(bot, message(*LIFE[0], "crisis"))
    assert result.outcome == "failed" and result.attempts == 1  # invalid_auth: final
    assert result.error == "Slack API 200: invalid_auth"
    assert BOT_TOKEN not in caplog.text and "SECRETbottoken" not in caplog.text


def test_webhook_slack_and_pagerduty_show_the_storylines_first_and_the_trend():
    with HttpStandIn() as http:
        slack = SlackReceiver("pr-slack", Secret(http.url("/services/T/B/x")))
        pagerduty = PagerDutyReceiver("pd", Secret("R0UT1NG"), http.url("/pd"))
        hook = WebhookReceiver("ops-hook", Secret(http.url("/hook")), Secret("k"))
        for receiver in (slack, pagerduty, hook):
            assert deliver(receiver, message(*LIFE[0], receiver.name)).outcome == "sent"
        slack_body, pd_body, hook_body = (r.json() for r in http.delivered())
    first_section = slack_body["blocks"][1]["text"]["text"]
    assert first_section.startswith("*2 storylines: customer-data leak (78 %, started by "
                                    "@leaker at <!date^1795831632^{time}|02:07 UTC>)")
    assert "▁" in str(slack_body["blocks"]) and "grafana.local" in str(slack_body["blocks"])
    payload = pd_body["payload"]
    assert payload["summary"].startswith("[WARNING] ACME: Negative wave — 2 storylines: "
                                         "customer-data leak (78 %, started by @leaker at "
                                         "02:07), price rise (22 %) — 312 negative")
    details = payload["custom_details"]
    assert len(details["trend_sparkline"]) == 24 and details["trend_sparkline"][-1] == "█"
    assert details["dashboard"].startswith("http://grafana.local:3000/d/")
    assert pd_body["dedup_key"] == INCIDENT
    # Slack's sparkline is the same trend as PagerDuty's: quiet, then the wave at the end.
    assert f"last 120 min: {details['trend_sparkline']} (now 327" in str(slack_body["blocks"])
    # The generic webhook: the same line for people, the storylines themselves for programs.
    assert hook_body["storyline_summary"] == ("2 storylines: customer-data leak (78 %, started "
                                              "by @leaker at 02:07), price rise (22 %)")
    assert [s["label"] for s in hook_body["incident"]["storylines"]] == [
        "customer-data leak", "price rise"]
    assert hook_body["incident"]["storylines"][0]["first_post"]["author_handle"] == "leaker"


@pytest.mark.parametrize("kind", ["opened", "resolved"])
def test_an_event_without_storylines_or_trend_still_renders(kind):
    incident = incident_event(event="resolved" if kind == "resolved" else "opened")
    msg = build_message(incident, kind, f"{INCIDENT}:{kind}:r", grafana_url="http://g")
    assert msg.storylines == () and len(msg.trend) == 1


def test_slack_bot_a_deleted_opening_starts_a_new_thread_and_a_failed_edit_sends_once():
    with SlackApiStandIn(BOT_TOKEN) as api:
        bot = SlackBotReceiver("crisis", Secret(BOT_TOKEN), "#crisis", api.api_url())
        opened = deliver(bot, message(*LIFE[0], "crisis"))
        api.refuse_updates = True
        escalated = deliver(bot, message(*LIFE[1], "crisis", thread=opened.thread))
        assert escalated.outcome == "sent" and escalated.attempts == 1
        ts = opened.thread.partition("/")[2]
        assert len(api.thread(ts)) == 1  # the reply once, though the edit failed
        api.delete(ts)
        resolved = deliver(bot, message(*LIFE[3], "crisis", thread=opened.thread))
        assert resolved.outcome == "sent" and resolved.thread != opened.thread
        (top,) = api.top_level()
    assert top["text"].startswith("[CRITICAL] ACME: Resolved")


def test_slack_bot_a_reply_is_posted_once_when_its_edit_outlasts_the_timeout():
    # Slack answers chat.update after the send's timeout: the reply was delivered, and
    # must not be posted again by a retry.
    slow = replace(FAST, timeout_s=0.5)
    with SlackApiStandIn(BOT_TOKEN) as api:
        bot = SlackBotReceiver("crisis", Secret(BOT_TOKEN), "#crisis", api.api_url())
        opened = deliver(bot, message(*LIFE[0], "crisis"))
        api.update_delay_s = 1.5
        recorded_at: list[int] = []

        async def run():
            async with Dispatcher({bot.name: bot}, slow, MemoryAlertSink()) as dispatcher:
                async def on_sent(result):  # what the alert service writes to its ledger
                    recorded_at.append(len(api.requests))

                return await dispatcher.deliver(
                    message(*LIFE[1], "crisis", thread=opened.thread), bot.name,
                    on_sent=on_sent)

        escalated = asyncio.run(run())
        assert escalated.outcome == "sent" and escalated.attempts == 1
        ts = opened.thread.partition("/")[2]
        (reply,) = api.thread(ts)  # once
        assert reply["text"].startswith("[CRITICAL] ACME: Escalated to critical")
        # Recorded as sent after the reply (2 requests: opening, reply) and before the
        # edit was even asked for: a crash during the edit cannot send the reply again.
        assert recorded_at == [2]
        time.sleep(1.2)  # the slow edit arrives in the end
        assert [path.rsplit("/", 1)[-1] for path in (r.path for r in api.requests)] == [
            "chat.postMessage", "chat.postMessage", "chat.update"]


def subsided_message(receiver, thread=None):
    incident = {**incident_event(event="subsided", sequence=2, storylines=True),
                "schema_version": 3, "status": "subsided",
                "subsided_at": "2026-11-28T02:22:00+00:00",
                "updated_at": "2026-11-28T02:31:00+00:00", "peak_negative": 404,
                "peak_at": "2026-11-28T02:10:00+00:00",
                "summary": "Subsided: 4 negative posts in the last 10 min (0.7x normal); "
                           "peak was 404"}
    return build_message(incident, "subsided", f"{INCIDENT}:subsided-2:{receiver}",
                         grafana_url="http://grafana.local:3000", timezone="Europe/Paris",
                         thread=thread)


def test_a_subsided_wave_edits_the_slack_opening_and_threads_a_short_email():
    with SlackApiStandIn(BOT_TOKEN) as api, SmtpStandIn() as smtp:
        bot = SlackBotReceiver("crisis", Secret(BOT_TOKEN), "#crisis", api.api_url())
        opened = deliver(bot, message(*LIFE[0], "crisis"))
        assert deliver(bot, subsided_message("crisis", opened.thread)).outcome == "sent"
        (top,) = api.top_level()
        (reply,) = api.thread(top["ts"])
        email = EmailReceiver("pr-email", ("pr@acme.example",), "vigie@acme.example",
                              "127.0.0.1", smtp.port)
        for msg in (message(*LIFE[0], "pr-email"), subsided_message("pr-email")):
            assert deliver(email, msg).outcome == "sent"
        mails = [m.message for m in smtp.wait_for(2)]
    # Slack: the channel's opening now says it subsided and still shows the evidence; the
    # thread has a short reply.
    assert top["edits"] == 1 and top["text"].startswith("[CRITICAL] ACME: Subsided")
    assert "Calm since <!date^1795832520^{time}|03:22 CET>" in str(top["blocks"])
    assert "customer-data leak" in str(top["blocks"])
    assert reply["text"].startswith("[CRITICAL] ACME: Subsided") and len(reply["blocks"]) == 3
    # Email: in the incident's thread, short.
    subsided = mails[1]
    assert subsided["Subject"] == "Re: [Vigie] ACME: negative wave since 2026-11-28 03:12 CET"
    assert subsided.get_body(preferencelist=("plain",)).get_content().startswith(
        "[CRITICAL] ACME: Subsided")
    assert subsided["In-Reply-To"] == mails[0]["Message-ID"]
    assert subsided["Message-ID"] == "<acme-20261128T0212Z.subsided-2.pr-email@acme.example>"
    text = subsided.get_body(preferencelist=("plain",)).get_content()
    assert ("Calm since 03:22 CET (peak 404 negative posts in 10 min at 03:10 CET); "
            "no reminders while it stays calm.") in text
    assert "Top posts" not in text and len(text.splitlines()) <= 9


def test_a_renewed_surge_edits_the_slack_opening_without_a_reply():
    active_again = {**incident_event(event="updated", sequence=3, storylines=True),
                    "schema_version": 3, "status": "active"}
    with SlackApiStandIn(BOT_TOKEN) as api:
        bot = SlackBotReceiver("crisis", Secret(BOT_TOKEN), "#crisis", api.api_url())
        opened = deliver(bot, message(*LIFE[0], "crisis"))
        deliver(bot, subsided_message("crisis", opened.thread))
        status = build_message(active_again, "status", f"{INCIDENT}:status-3:crisis",
                               grafana_url="http://grafana.local:3000", thread=opened.thread)
        assert deliver(bot, status).outcome == "sent"
        (top,) = api.top_level()
        replies = api.thread(top["ts"])
        # Without an opening of its own, a silent edit has nothing to do (and posts nothing).
        orphan = build_message(active_again, "status", f"{INCIDENT}:status-3:other",
                               grafana_url="http://g")
        assert deliver(bot, orphan).outcome == "sent"
        assert len(api.top_level()) == 1
    assert top["edits"] == 2 and top["text"].startswith("[CRITICAL] ACME: Active again")
    assert "Calm since" not in str(top["blocks"])
    assert len(replies) == 1  # only the "subsided" reply: the edit notified nobody
