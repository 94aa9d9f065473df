"""Sources end to end on the real broker: every valid item arrives once in posts.raw, bad
items are counted with their reason, and a stopped connector resumes where it stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.settings import KafkaSettings, Secret
from pipeline.sources.base import FatalSourceError, RunnerSettings, SourceRunner
from pipeline.sources.bluesky import BlueskyConnector, BlueskySettings
from pipeline.sources.push import PushServer, PushSettings
from pipeline.sources.sinks import KafkaSink
from tests.integration.conftest import ROOT, consume, vigie_command
from tests.integration.source_servers import (
    Feed,
    FeedServer,
    JetstreamServer,
    ThreadedServer,
    fixture_lines,
    fixture_text,
)

pytestmark = pytest.mark.integration

WATCHLIST = """\
version: 1
receivers:
  hook: {type: webhook, url: "http://127.0.0.1:9/hook"}
brands:
  - id: acme
    name: ACME
    aliases: [Acme Corp]
    hashtags: ["#acme", "#acmeleaks"]
    exclude: ["acme pie"]
    owners:
      - {name: PR, receivers: [hook], min_severity: warning}
"""


def jetstream_event(n: int, text: str) -> str:
    return json.dumps(
        {
            "did": "did:plc:eygmaihciaxprqvxpfvl6flk",
            "time_us": 1795831961000000 + n * 1000,
            "kind": "commit",
            "commit": {
                "rev": f"3lbt{n:09d}",
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": f"3lbt{n:09d}",
                "record": {
                    "$type": "app.bsky.feed.post",
                    "createdAt": "2026-11-28T02:12:41.000Z",
                    "langs": ["fr"],
                    "text": text,
                },
                "cid": f"bafyrei{n:020d}",
            },
        }
    )


def keys(records: list[Any]) -> list[str]:
    return [record.key.decode() for record in records]


def test_bluesky_into_posts_raw_once_each(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    events = fixture_lines("jetstream_events.jsonl")
    malformed = ["{not json", json.dumps({"kind": "commit", "did": "did:plc:x"})]

    async def scenario() -> Any:
        server = JetstreamServer(events, drops=[3, 2], extra_first=malformed)
        async with server:
            sink = KafkaSink(kafka_settings, source="bluesky")
            connector = BlueskyConnector(
                BlueskySettings(url=f"ws://127.0.0.1:{server.port}/subscribe")
            )
            runner = SourceRunner(
                connector,
                sink,
                RunnerSettings(state_dir=tmp_path, backoff_scale=0.01, checkpoint_seconds=0.05),
            )
            task = asyncio.create_task(runner.run())
            deadline = time.monotonic() + 20
            while runner.report.produced < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            runner.stop()
            report = await task
            sink.close()
        return report

    report = asyncio.run(scenario())
    records = consume(kafka_settings, "posts.raw", expected=6, timeout_s=30, idle_s=2)
    assert len(records) == 6
    assert len(set(keys(records))) == 6
    assert all(k.startswith("bluesky:at://did:plc:") for k in keys(records))
    assert report.invalid == 2 and report.duplicate >= 1 and report.reconnects >= 2
    rejects = [json.loads(x) for x in (tmp_path / "bluesky.rejects.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in rejects] == [
        "not JSON: Expecting property name enclosed in double quotes",
        "event has no integer time_us",
    ]
    value = json.loads(records[0].value)
    assert value["schema_version"] == 1 and value["platform"] == "bluesky"


def _cli_env(kafka_settings: KafkaSettings, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env.update(
        VIGIE_KAFKA_BOOTSTRAP_SERVERS=kafka_settings.bootstrap_servers,
        VIGIE_TOPIC_PREFIX=kafka_settings.topic_prefix,
        VIGIE_STATE_DIR=str(tmp_path / "state"),
        VIGIE_SOURCE_CHECKPOINT_SECONDS="0.2",
        VIGIE_SOURCE_BACKOFF_SCALE="0.01",
        PYTHONUNBUFFERED="1",
        **extra,
    )
    return env


def test_cli_sigterm_mid_stream_then_resume_nothing_lost_or_repeated(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text(WATCHLIST)
    texts = ["ACME cache encore un rappel" if n % 5 else "Il fait beau à Lyon" for n in range(150)]
    wanted = {
        f"bluesky:at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3lbt{n:09d}"
        for n, text in enumerate(texts)
        if "ACME" in text
    }
    server = JetstreamServer([jetstream_event(n, t) for n, t in enumerate(texts)], pace=0.02)
    with ThreadedServer(server):
        env = _cli_env(
            kafka_settings, tmp_path, VIGIE_BLUESKY_URL=f"ws://127.0.0.1:{server.port}/subscribe"
        )
        command = [*vigie_command(), "ingest", "bluesky", "--watchlist", str(watchlist)]

        state_file = tmp_path / "state" / "sources" / "bluesky.json"
        last_time_us = json.loads(jetstream_event(len(texts) - 1, ""))["time_us"]

        def run_until(done: Any) -> dict[str, Any]:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 60
            while not done() and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            _, err = process.communicate(timeout=30)
            assert process.returncode == 0, err.decode()[-3000:]
            return json.loads(err.decode().strip().splitlines()[-1])

        def saved_time_us() -> int:
            try:
                return int(json.loads(state_file.read_text())["cursor"]["time_us"])
            except (OSError, ValueError, KeyError):
                return 0

        first = run_until(lambda: server.sent >= 40)  # stopped mid-stream
        assert 0 < first["produced"] < len(wanted), first
        state = json.loads(state_file.read_text())
        assert state["cursor"]["time_us"] > 0
        second = run_until(lambda: saved_time_us() == last_time_us)
    assert server.cursors[-1] == str(state["cursor"]["time_us"])
    assert first["produced"] + second["produced"] == len(wanted)
    # The event at the resume cursor is read again; if it was filtered, it is filtered again.
    assert 0 <= first["filtered"] + second["filtered"] - (len(texts) - len(wanted)) <= 1
    records = consume(kafka_settings, "posts.raw", expected=len(wanted), timeout_s=30, idle_s=2)
    assert sorted(keys(records)) == sorted(wanted)


def test_rss_cli_once_twice_sends_each_item_once(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    server = FeedServer(
        {
            "/feed": Feed(fixture_text("feed_rss.xml").encode()),
            "/atom": Feed(fixture_text("feed_atom.xml").encode(), etag='"a"'),
        }
    )
    with ThreadedServer(server):
        feeds = tmp_path / "feeds.txt"
        feeds.write_text(f"{server.url}/feed 60\n{server.url}/atom 60 news\n")
        env = _cli_env(kafka_settings, tmp_path, VIGIE_RSS_MAX_AGE_HOURS="0")
        command = [
            *vigie_command(),
            "ingest",
            "rss",
            "--once",
            "--no-filter",
            "--feeds",
            str(feeds),
        ]
        runs = [
            subprocess.run(command, env=env, cwd=ROOT, capture_output=True, timeout=60)
            for _ in range(2)
        ]
    for run in runs:
        assert run.returncode == 0, run.stderr.decode()[-3000:]
    summaries = [json.loads(r.stderr.decode().strip().splitlines()[-1]) for r in runs]
    assert [s["produced"] for s in summaries] == [5, 0]
    assert summaries[0]["invalid"] == 2
    records = consume(kafka_settings, "posts.raw", expected=5, timeout_s=30, idle_s=2)
    assert len(records) == 5 and len(set(keys(records))) == 5


def test_push_answers_after_kafka_acknowledged(kafka_settings: KafkaSettings) -> None:
    posts = [
        {
            "schema_version": 1,
            "platform": "facebook",
            "id": f"pfbid0{n}",
            "url": f"https://www.facebook.com/acme/posts/pfbid0{n}",
            "author": {"handle": "acme.fans", "followers": 5400},
            "text": f"ACME page comment {n}",
            "created_at": "2026-11-28T02:12:41+00:00",
        }
        for n in range(3)
    ]

    async def scenario() -> tuple[int, Any]:
        sink = KafkaSink(kafka_settings, source="push")
        server = PushServer(PushSettings(port=0, token=Secret("t0ken")), sink)
        await server.start()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    f"http://127.0.0.1:{server.port}/v1/posts",
                    json={"posts": posts},
                    headers={"Authorization": "Bearer t0ken"},
                ) as response:
                    return response.status, await response.json()
        finally:
            await server.stop()
            sink.close()

    status, answer = asyncio.run(scenario())
    assert status == 200 and answer["accepted"] == 3
    # Acknowledged means readable at once: no waiting for a flush.
    records = consume(kafka_settings, "posts.raw", expected=3, timeout_s=10, idle_s=1)
    assert (
        sorted(keys(records))
        == sorted(answer["keys"])
        == sorted(f"facebook:pfbid0{n}" for n in range(3))
    )


def test_a_record_kafka_refuses_stops_the_source_without_advancing_its_cursor(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    (tmp_path / "bluesky.json").write_text(
        json.dumps({"cursor": {"time_us": 1795831961000000}, "recent_keys": []})
    )
    # 3 MB of text: more than the producer's 2 MB request limit, so Kafka never takes it.
    events = [jetstream_event(1, "ACME ok"), jetstream_event(2, "ACME " + "x" * 3_000_000)]

    async def scenario() -> None:
        async with JetstreamServer(events) as server:
            sink = KafkaSink(kafka_settings, source="bluesky")
            connector = BlueskyConnector(
                BlueskySettings(url=f"ws://127.0.0.1:{server.port}/subscribe")
            )
            # A record limit above the producer's, to reach Kafka's own refusal.
            limits = RunnerSettings(state_dir=tmp_path, max_record_bytes=10_000_000)
            runner = SourceRunner(connector, sink, limits)
            try:
                with pytest.raises(
                    FatalSourceError, match="Kafka refused a post.*MessageSizeTooLarge"
                ):
                    await asyncio.wait_for(runner.run(), 30)
            finally:
                sink.close()

    asyncio.run(scenario())
    saved = json.loads((tmp_path / "bluesky.json").read_text())
    assert saved["cursor"]["time_us"] == 1795831961000000


async def _run_into_kafka(runner: SourceRunner, expected: int, timeout: float = 20.0) -> Any:
    task = asyncio.create_task(runner.run())
    deadline = time.monotonic() + timeout
    while runner.report.produced < expected and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    if not task.done():
        await asyncio.sleep(0.3)  # let replayed duplicates arrive too
        runner.stop()
    return await task


def test_x_mastodon_and_reddit_into_posts_raw_once_each(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from pipeline.sources.mastodon import MastodonConnector, MastodonSettings, parse_streams
    from pipeline.sources.reddit import RedditConnector, RedditSettings
    from pipeline.sources.search_terms import BrandTerms, x_rules
    from pipeline.sources.twitter import XConnector, XSettings
    from tests.integration.source_servers import MastodonServer, RedditServer, XServer, sse

    tweets = fixture_lines("x_stream.jsonl")
    statuses = json.loads(fixture_text("mastodon_statuses.json"))
    things = json.loads(fixture_text("reddit_things.json"))
    fast = RunnerSettings(state_dir=tmp_path, backoff_scale=0.01, checkpoint_seconds=0.05)

    async def scenario() -> dict[str, Any]:
        reports: dict[str, Any] = {}
        sink = KafkaSink(kafka_settings, source="test")
        try:
            x_server = XServer(
                "tok", scripts=[[tweets[0], tweets[1], "{bad", tweets[1]], tweets[1:], []]
            )
            async with x_server:
                connector = XConnector(
                    XSettings(api_url=x_server.url, bearer_token=Secret("tok")),
                    rules=x_rules([BrandTerms("acme", ("ACME",))]),
                )
                reports["x"] = await _run_into_kafka(SourceRunner(connector, sink, fast), 5)
            (tmp_path / "mastodon.json").write_text(
                json.dumps({"cursor": {"since_id": {"hashtag:acme": statuses[0]["id"]}}})
            )
            m_server = MastodonServer(
                "tok", statuses, scripts=[[sse("update", s) for s in statuses[3:]]]
            )
            async with m_server:
                settings = MastodonSettings(
                    url=m_server.url, token=Secret("tok"), streams=parse_streams("#acme")
                )
                runner = SourceRunner(MastodonConnector(settings), sink, fast)
                reports["mastodon"] = await _run_into_kafka(runner, 5)
            (tmp_path / "reddit.json").write_text(
                json.dumps(
                    {
                        "cursor": {
                            "newest": {"r/france+europe/new": 1.0, "r/france+europe/comments": 1.0}
                        }
                    }
                )
            )
            r_server = RedditServer("id", "secret", things["links"], things["comments"])
            async with r_server:
                settings = RedditSettings(
                    client_id=Secret("id"),
                    client_secret=Secret("secret"),
                    subreddits=("france", "europe"),
                    search=False,
                    auth_url=r_server.url,
                    api_url=r_server.url,
                    min_request_interval=0.0,
                )
                runner = SourceRunner(RedditConnector(settings), sink, fast, once=True)
                reports["reddit"] = await asyncio.wait_for(runner.run(), 20)
        finally:
            sink.close()
        return reports

    reports = asyncio.run(scenario())
    expected = (
        {f"twitter:{json.loads(t)['data']['id']}" for t in tweets}
        | {f"mastodon:{s['id']}" for s in statuses[1:]}
        | {f"reddit:{t['data']['name']}" for t in things["links"] + things["comments"]}
    )
    records = consume(kafka_settings, "posts.raw", expected=len(expected), timeout_s=30, idle_s=2)
    assert sorted(keys(records)) == sorted(expected)  # every one, once
    assert reports["x"].invalid == 1 and reports["x"].duplicate >= 1
    assert reports["mastodon"].duplicate >= 1  # catch-up and stream both saw 4..6


def test_serve_cli_accepts_then_stops_cleanly_on_sigterm(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    import urllib.request

    from tests.integration.conftest import free_port

    port = free_port()
    env = _cli_env(
        kafka_settings, tmp_path, VIGIE_INGEST_TOKEN="cli-token", VIGIE_INGEST_PORT=str(port)
    )
    process = subprocess.Popen(
        [*vigie_command(), "ingest", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        body = json.dumps(
            {
                "schema_version": 1,
                "platform": "other",
                "id": "pinterest-p1",
                "author": {"handle": "h"},
                "text": "ACME board",
                "created_at": "2026-11-28T02:12:41+00:00",
            }
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/posts",
            data=body,
            method="POST",
            headers={"Authorization": "Bearer cli-token", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert json.loads(response.read())["keys"] == ["other:pinterest-p1"]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()[-2000:]
    records = consume(kafka_settings, "posts.raw", expected=1, timeout_s=20, idle_s=1)
    assert keys(records) == ["other:pinterest-p1"]
