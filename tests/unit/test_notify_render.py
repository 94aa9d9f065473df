"""What a notification says, before any receiver formats it."""

from __future__ import annotations

import copy
import re
import unicodedata
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

from pipeline.notify.email import build_email
from pipeline.notify.pagerduty import pagerduty_event
from pipeline.notify.render import (
    build_message,
    readable,
    render_html,
    render_text,
    safe_url,
    summary_sentence,
)
from pipeline.notify.slack import slack_payload
from pipeline.notify.webhook import sign, verify_signature, webhook_body
from pipeline.records import human_number
from tests.incidents import incident_event

INCIDENT = {
    **incident_event(),
    "top_posts": [
        {
            "post_key": "twitter:1",
            "url": "https://x.com/jdoe/status/1",
            "author_handle": "jdoe",
            "author_name": "J. Doe",
            "followers": 1200000,
            "text": "ACME leaked <all> the data & more",
            "sentiment": "negative",
            "created_at": "2026-11-28T02:12:41+00:00",
        },
        {
            "post_key": "blog:2",
            "url": "javascript:alert(1)",
            "author_handle": "evil",
            "author_name": "",
            "followers": 50,
            "text": "click me",
            "sentiment": "negative",
            "created_at": "2026-11-28T02:13:00+00:00",
        },
    ],
    "surging_terms": [{"term": "#acmeleaks", "count": 120, "lift": 35.0}],
    "trend": [],
}


def message(event=INCIDENT, kind="opened"):
    return build_message(
        event,
        kind,
        f"{event['incident_id']}:{kind}:pr-slack",
        grafana_url="http://grafana.local:3000/",
        top_posts=5,
    )


def test_summary_uses_the_detectors_sentence_or_builds_one():
    assert summary_sentence(INCIDENT) == "312 negative posts in 10 min, 14x normal; reach 2.1M"
    no_summary = {**INCIDENT, "summary": ""}
    assert summary_sentence(no_summary) == "312 negative posts in 10 min, 14x normal; reach 2.1M"


def test_human_numbers():
    assert [human_number(n) for n in (312, 14500, 2_100_000, 3_000_000_000)] == [
        "312",
        "14.5k",
        "2.1M",
        "3B",
    ]


def test_text_has_brand_numbers_top_posts_terms_and_dashboard_link():
    text = render_text(message())
    assert "[CRITICAL] ACME: Negative wave" in text
    assert "312 negative posts in 10 min, 14x normal; reach 2.1M" in text
    assert "negative 312 (92%) · neutral 20 (6%) · positive 8 (2%)" in text
    assert "J. Doe (@jdoe), 1.2M followers: ACME leaked <all> the data & more" in text
    assert "https://x.com/jdoe/status/1" in text
    assert "#acmeleaks ×35" in text
    assert "javascript:" not in text


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_grafana_link_names_brand_and_time_range():
    url = message().dashboard_url
    parts = urlsplit(url)
    assert url.startswith("http://grafana.local:3000/d/vigie-brands/vigie-brands?")
    query = parse_qs(parts.query)
    assert query["var-brand"] == ["acme"]
    # 30 minutes before the incident opened, up to now while it is open
    assert int(query["from"][0]) == ms("2026-11-28T01:42:00+00:00")
    assert query["to"] == ["now"]
    resolved = {**INCIDENT, "event": "resolved", "resolved_at": "2026-11-28T03:00:00+00:00"}
    query = parse_qs(urlsplit(message(resolved, "resolved").dashboard_url).query)
    assert int(query["to"][0]) == ms("2026-11-28T03:30:00+00:00")


def test_html_escapes_every_value_and_drops_unsafe_links():
    event = copy.deepcopy(INCIDENT)
    event["brand_name"] = "<script>alert(1)</script>"
    page = render_html(message(event))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "ACME leaked &lt;all&gt; the data &amp; more" in page
    assert 'href="https://x.com/jdoe/status/1"' in page
    assert "javascript:" not in page


def test_control_characters_never_reach_a_title():
    event = {**INCIDENT, "brand_name": "ACME\r\nBcc: victim@example.com"}
    title = message(event).title
    assert "\n" not in title and "\r" not in title
    assert safe_url("https://ok.example/a") == "https://ok.example/a"
    assert safe_url("https://ok.example/a\nb") is None
    assert safe_url("ftp://x") is None


def test_slack_blocks_escape_mrkdwn_and_keep_a_text_fallback():
    payload = slack_payload(message())
    assert "312 negative posts" in payload["text"]
    blocks = payload["blocks"]
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "[CRITICAL] ACME: Negative wave"
    everything = str(blocks)
    assert "ACME leaked &lt;all&gt; the data &amp; more" in everything
    assert "<https://x.com/jdoe/status/1|J. Doe (@jdoe) (1.2M followers)>" in everything
    assert "|Open the Grafana dashboard>" in everything
    assert "javascript:" not in everything


def test_webhook_body_and_signature():
    body = webhook_body(message())
    assert body["incident_id"] == "acme-20261128T0212Z"
    assert body["kind"] == "opened"
    assert body["notification_key"] == "acme-20261128T0212Z:opened:pr-slack"
    assert body["sentiment"] == {"negative": 312, "neutral": 20, "positive": 8}
    raw = b'{"a":1}'
    signature = sign("s3cret", "1795313520", raw)
    assert verify_signature("s3cret", "1795313520", raw, signature, now=1795313530)
    assert not verify_signature("other", "1795313520", raw, signature, now=1795313530)
    assert not verify_signature("s3cret", "1795313520", raw + b" ", signature, now=1795313530)
    assert not verify_signature("s3cret", "1795313520", raw, signature, now=1795313520 + 3600)


HOSTILE_POST = {
    "post_key": "twitter:666",
    "url": "https://x.com/evil/status/666",
    "author_handle": "evil",
    "author_name": "Evil \u202emoc.elgoog\u202c",
    "followers": 10,
    "text": "<!channel> <!here> <!everyone> <@U024BE7LH> see <https://evil.example|click here>",
    "sentiment": "negative",
    "created_at": "2026-11-28T02:13:30+00:00",
}


def test_readable_drops_what_reorders_or_hides_text_and_keeps_real_joins():
    assert readable("Evil \u202emoc.elgoog\u202c") == "Evil moc.elgoog"
    overrides = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
    for char in overrides + "\u200b\u200e\u200f\ufeff\u2060\u00ad\U000e0041\u3164":
        assert readable(f"a{char}b") == "ab", hex(ord(char))
    assert readable("goo\u200dgle") == "google"  # a joiner between ASCII letters hides nothing
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert readable(family) == family  # emoji sequences stay joined
    assert readable("\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645") == (
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # Persian needs its ZWNJ
    )
    assert readable("café ☕ Ünïcödé") == "café ☕ Ünïcödé"


def test_no_invisible_character_reaches_anything_a_person_reads():
    event = copy.deepcopy(INCIDENT)
    event["brand_name"] = "AC\u202eME"
    event["summary"] = "wave\u200b of \u2066posts\u2069"
    event["top_posts"] = [HOSTILE_POST]
    event["surging_terms"] = [{"term": "#le\u200bak", "lift": 3.0}]
    msg = message(event)
    mail = build_email(msg, "vigie@acme.example", ("pr@acme.example",))
    shown = (
        render_text(msg)
        + render_html(msg)
        + str(slack_payload(msg))
        + str({k: v for k, v in webhook_body(msg).items() if k != "incident"})
        + str(pagerduty_event(msg, "key"))
        + str(mail["Subject"])
        + mail.get_body(("plain",)).get_content()
        + mail.get_body(("html",)).get_content()
    )
    invisible = [c for c in shown if unicodedata.category(c) == "Cf"]
    assert invisible == []
    assert "Evil moc.elgoog (@evil)" in render_text(msg)
    assert msg.title == "[CRITICAL] ACME: Negative wave"
    assert safe_url("https://goo\u202egle.com/") is None


def test_slack_text_fallback_is_escaped_like_the_blocks():
    event = copy.deepcopy(INCIDENT)
    event["top_posts"] = [HOSTILE_POST]
    event["summary"] = "<!channel> wave & more"
    payload = slack_payload(message(event))
    everything = payload["text"] + str(payload["blocks"])
    for command in ("<!channel>", "<!here>", "<!everyone>", "<@U024BE7LH>", "<https://evil"):
        assert command not in everything
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;!everyone&gt; &lt;@U024BE7LH&gt;" in payload["text"]
    assert "&lt;https://evil.example|click here&gt;" in payload["text"]
    assert "&lt;!channel&gt; wave &amp; more" in payload["text"]
    # Our own links are still links, and Slack is told not to auto-link the poster's words.
    assert "<https://x.com/evil/status/666|" in str(payload["blocks"])
    mrkdwn = [b["text"] for b in payload["blocks"] if b["type"] == "section"]
    assert mrkdwn and all(t["verbatim"] is True for t in mrkdwn)


def test_storylines_come_first_in_one_line_with_the_first_post_in_the_reader_s_zone():
    from pipeline.notify.render import sparkline, storyline_sentence
    from tests.incidents import incident_event

    event = incident_event(storylines=True)
    paris = build_message(event, "opened", "k", grafana_url="http://g", timezone="Europe/Paris")
    assert storyline_sentence(paris) == ("2 storylines: customer-data leak (78 %, started by "
                                         "@leaker at 03:07), price rise (22 %)")
    assert render_text(paris).splitlines()[2] == storyline_sentence(paris)
    utc = build_message(event, "opened", "k", grafana_url="http://g")
    assert "started by @leaker at 02:07" in storyline_sentence(utc)
    older = build_message(incident_event(), "opened", "k", grafana_url="http://g")
    assert storyline_sentence(older) == "" and "storylines" not in render_text(older)
    assert sparkline([0, 1, 2, 7]) == "▁▂▃█" and len(sparkline(list(range(100)))) == 24


SUBSIDED = {
    **incident_event(event="subsided", sequence=6, storylines=True), "schema_version": 3,
    "status": "subsided", "subsided_at": "2026-11-28T02:22:00+00:00",
    "updated_at": "2026-11-28T02:31:00+00:00", "peak_negative": 404,
    "peak_at": "2026-11-28T02:10:00+00:00",
    "summary": "Subsided: 4 negative posts in the last 10 min (0.7x normal); peak was 404",
}


def test_a_subsided_message_is_short_and_says_since_when_and_the_peak():
    message = build_message(SUBSIDED, "subsided", "acme-1:subsided-6:pr-email",
                            grafana_url="http://g", timezone="Europe/Paris")
    text = render_text(message)
    lines = text.splitlines()
    assert lines[0] == "[CRITICAL] ACME: Subsided"
    assert lines[2] == ("Calm since 03:22 CET (peak 404 negative posts in 10 min at 03:10 CET); "
                        "no reminders while it stays calm.")
    assert lines[3].startswith("Subsided: 4 negative posts")
    # Short: the evidence was in the earlier messages of the thread.
    assert "Top posts" not in text and "Storylines" not in text and len(lines) <= 9
    html = render_html(message)
    assert "Calm since 03:22 CET" in html and "Top posts" not in html
    # Slack: the thread reply is short, the edited opening keeps the evidence and says it.
    short, full = slack_payload(message, short=True), slack_payload(message)
    assert len(short["blocks"]) == 3 and "Calm since <!date^" in str(short["blocks"])
    assert "Calm since <!date^" in str(full["blocks"][1]) and len(full["blocks"]) > 5
    assert webhook_body(message)["kind"] == "subsided"
    assert webhook_body(message)["incident"]["status"] == "subsided"
    # Only a subsided incident says it is calm.
    active = {**SUBSIDED, "event": "updated", "status": "active", "subsided_at": None}
    message = build_message(active, "reminder", "acme-1:reminder-1:pr-email",
                            grafana_url="http://g")
    assert "Calm since" not in render_text(message)
    assert "Calm since" not in str(slack_payload(message)["blocks"])


def _storyline_event(count: int) -> dict:
    """An incident with `count` storylines (the detector reports up to 5), top first."""
    from tests.incidents import STORYLINES

    extra = [{**STORYLINES[1], "label": label, "share": share, "negative": 10,
              "headline": f"{label} headline"}
             for label, share in (("power cut", 0.06), ("late deliveries", 0.05),
                                  ("rude support", 0.05))]
    storylines = [{**STORYLINES[0], "share": 0.6}, {**STORYLINES[1], "share": 0.18}, *extra]
    return {**incident_event(storylines=True), "storylines": storylines[:count]}


def _storyline_line_per_receiver(msg) -> dict[str, str]:
    """The storyline line as each receiver renders it (Slack's bold, with its date token)."""
    mail = build_email(msg, "vigie@acme.example", ("pr@acme.example",))
    pagerduty = pagerduty_event(msg, "key")["payload"]
    html = mail.get_body(("html",)).get_content()
    return {
        "text": render_text(msg).splitlines()[2],
        "email text": mail.get_body(("plain",)).get_content().splitlines()[2],
        "email html": html.split("<p><strong>", 1)[1].split("</strong></p>", 1)[0],
        # The bot posts, threads and edits with this same payload (slack_bot.py).
        "slack": slack_payload(msg)["blocks"][1]["text"]["text"],
        "pagerduty summary": pagerduty["summary"].split(" — ")[1],
        "pagerduty details": pagerduty["custom_details"]["storylines"],
        "webhook": webhook_body(msg)["storyline_summary"],
    }


def test_every_receiver_shows_only_the_top_three_storylines_first():
    from pipeline.notify.render import storyline_sentence

    # Five reported storylines: the line names three and says two more exist.
    msg = build_message(_storyline_event(5), "opened", "acme-1:opened:r",
                        grafana_url="http://g", timezone="Europe/Paris")
    line = ("5 storylines: customer-data leak (60 %, started by @leaker at 03:07), "
            "price rise (18 %), power cut (6 %) and 2 more")
    assert storyline_sentence(msg) == line
    rendered = _storyline_line_per_receiver(msg)
    slack = rendered.pop("slack")
    assert rendered == dict.fromkeys(rendered, line)
    assert slack.startswith(
        "*5 storylines: customer-data leak (60 %, started by @leaker at <!date^")
    assert slack.endswith("), price rise (18 %), power cut (6 %) and 2 more*")
    # Slack writes the time in each reader's zone; clients that cannot, in the receiver's.
    assert "@leaker at <!date^1795831632^{time}|03:07 CET>)" in slack
    mail = build_email(msg, "vigie@acme.example", ("pr@acme.example",))
    pagerduty = pagerduty_event(msg, "key")["payload"]
    webhook = webhook_body(msg)
    assert pagerduty["summary"].startswith(f"{msg.title} — {line} — ")
    # Below the line, one row per storyline shown: three, not five.
    shown = render_text(msg) + str(slack_payload(msg)["blocks"]) + str(pagerduty) + \
        str({k: v for k, v in webhook.items() if k != "incident"}) + \
        mail.get_body(("html",)).get_content()
    assert "late deliveries" not in shown and "rude support" not in shown
    assert len(webhook["incident"]["storylines"]) == 5  # the record keeps them all


def test_three_storylines_or_fewer_are_all_named_with_nothing_appended():
    first = "customer-data leak (60 %, started by @leaker at 03:07)"
    for count, line in ((3, f"3 storylines: {first}, price rise (18 %), power cut (6 %)"),
                        (2, f"2 storylines: {first}, price rise (18 %)"),
                        (1, f"1 storyline: {first}")):
        msg = build_message(_storyline_event(count), "opened", "acme-1:opened:r",
                            grafana_url="http://g", timezone="Europe/Paris")
        rendered = _storyline_line_per_receiver(msg)
        # Slack's line is bold and its time a date token; its fallback is the plain time.
        rendered["slack"] = re.sub(r"<!date\^\d+\^\{time\}\|(\d\d:\d\d) CET>", r"\1",
                                   rendered["slack"].strip("*"))
        assert rendered == dict.fromkeys(rendered, line), count
