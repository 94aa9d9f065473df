"""The whole pipeline on the real broker: a generated crisis in, alerts out.

validate -> score (the real default model) -> detect -> alert, in one real `vigie worker`,
with a stand-in webhook and a real SMTP server on 127.0.0.1 as the brand's receivers.
Intervals follow the posts' own times (the watermark of the score stage's progress), so six
hours of background replay in seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from pipeline.generator import BrandProfile, Generator, Scenario
from pipeline.producer import PostProducer
from tests.integration.conftest import consume
from tests.integration.notify_servers import HttpStandIn, SmtpStandIn

pytestmark = pytest.mark.integration

WARMUP, CRISIS, AFTER = 300, 30, 45
START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BRANDS = [
    BrandProfile("acme", ("ACME", "Acme Corp"), ("#acme",), ("@acme",), base_per_minute=4.0),
    BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#LumioLeaks",), ("@lumio_energie",),
                 base_per_minute=1.5),
]


def write_watchlist(tmp_path: Path, hook: HttpStandIn, smtp_port: int) -> Path:
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "version: 1\n"
        "receivers:\n"
        f'  ops-hook: {{type: webhook, url: "{hook.url()}", secret_env: T_HOOK_SECRET}}\n'
        f"  pr-email: {{type: email, to: [pr@lumio.example], from: vigie@lumio.example,"
        f" host: 127.0.0.1, port: {smtp_port}, security: none}}\n"
        "brands:\n"
        "  - id: acme\n"
        "    name: ACME\n"
        "    aliases: [Acme Corp]\n"
        "    handles: ['@acme']\n"
        "    hashtags: ['#acme']\n"
        "    owners: [{name: PR, receivers: [pr-email], min_severity: info}]\n"
        "  - id: lumio\n"
        "    name: Lumio Energie\n"
        "    aliases: [Lumio]\n"
        "    handles: ['@lumio_energie']\n"
        "    hashtags: ['#LumioLeaks']\n"
        "    owners:\n"
        "      - {name: PR, receivers: [pr-email], min_severity: info}\n"
        "      - {name: On-call, receivers: [ops-hook], min_severity: info}\n",
        encoding="utf-8",
    )
    return path


def produce(kafka_settings, posts) -> None:
    with PostProducer(kafka_settings, source="test") as producer:
        for post in posts:
            producer.send(post)
    assert producer.failed == 0


def test_a_leak_gives_one_alert_per_receiver_with_the_evidence_then_a_resolution(
        kafka_settings, worker_env, start_worker, tmp_path):
    leak = Scenario("wikirevelation", "lumio", WARMUP, CRISIS, 250)
    posts = list(Generator(BRANDS, START, seed=4, scenarios=[leak]).posts(WARMUP + CRISIS + AFTER))
    cut = (START + timedelta(minutes=WARMUP + CRISIS)).isoformat()
    before = [p for p in posts if p["created_at"] < cut]
    after = [p for p in posts if p["created_at"] >= cut]
    with HttpStandIn() as hook, SmtpStandIn() as smtp:
        env = {**worker_env,
               "VIGIE_WATCHLIST": str(write_watchlist(tmp_path, hook, smtp.port)),
               "T_HOOK_SECRET": "hook-secret",
               "VIGIE_DETECT_TICK_SECONDS": "1",
               "VIGIE_DETECT_QUIET_MINUTES": "20",
               "VIGIE_ALERT_GROUP_WAIT_S": "2", "VIGIE_ALERT_TICK_S": "0.2",
               "VIGIE_ALERT_REPEAT_INTERVAL_S": "3600"}
        start_worker(env)
        produce(kafka_settings, before)

        opened = hook.wait_for(1, timeout=240)
        produce(kafka_settings, after)
        events = [orjson.loads(r.value) for r in
                  consume(kafka_settings, "incidents", timeout_s=240, idle_s=8)]
        resolved_messages = [r for r in hook.wait_for(2, timeout=120)
                             if r.json()["kind"] == "resolved"]

        # The detector saw one incident, for the leaking brand only.
        assert {e["brand"] for e in events} == {"lumio"}, [e["summary"] for e in events]
        incident_ids = {e["incident_id"] for e in events}
        assert len(incident_ids) == 1
        assert [e["event"] for e in events].count("opened") == 1
        assert events[-1]["event"] == "resolved"
        opened_event = events[0]
        assert opened_event["opened_at"] >= (
            START + timedelta(minutes=WARMUP)).isoformat(), "no alarm before the leak"
        assert opened_event["opened_at"] <= (
            START + timedelta(minutes=WARMUP + 15)).isoformat(), "caught within 15 minutes"
        assert opened_event["observed"]["negative"] > 3 * opened_event["expected"]["negative"]
        assert opened_event["sentiment"]["negative"] > opened_event["sentiment"]["positive"]

        # One opening message per receiver, with the evidence a responder needs.
        body = opened[0].json()
        assert body["incident_id"] in incident_ids
        assert body["top_posts"] and all(p["url"].startswith("https://")
                                         for p in body["top_posts"])
        assert body["kind"] == "opened" and body["brand_name"] == "Lumio Energie"
        kinds = [r.json()["kind"] for r in hook.delivered()]
        assert kinds.count("opened") == 1 and kinds.count("resolved") == 1
        assert len(resolved_messages) == 1
        mails = smtp.wait_for(2, timeout=30)
        # One subject per incident ("Re: " after the first); the state is the first line.
        subjects = {m.message["Subject"].removeprefix("Re: ") for m in mails}
        assert len(subjects) == len(incident_ids), subjects
        assert all("Lumio Energie" in s for s in subjects)
        states = [m.message.get_body(("plain",)).get_content().splitlines()[0] for m in mails]
        assert sum("resolved" not in s.lower() for s in states) >= 1
        assert sum("resolved" in s.lower() for s in states) == 1, states

    # The scorer labelled the outrage negative. (The leak's first post reads like news and
    # is scored neutral, rightly; its reshares are left out here.)
    mentions = [orjson.loads(r.value) for r in consume(kafka_settings, "mentions.scored",
                                                       timeout_s=30, idle_s=3)]
    outrage = [m for m in mentions if m.get("brand") == "lumio"
               and "Leaks" in m.get("text", "") and not m["reshare_of"]]
    negative = sum(m["sentiment"]["label"] == "negative" for m in outrage)
    assert len(outrage) > 300 and negative / len(outrage) > 0.6
