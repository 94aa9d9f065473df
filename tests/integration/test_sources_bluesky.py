"""Bluesky Jetstream connector against a local WebSocket server speaking Jetstream's format."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pipeline.sources.base import RunnerSettings, SourceRunner
from pipeline.sources.bluesky import BlueskyConnector, BlueskySettings
from pipeline.sources.sinks import MemorySink
from tests.integration.source_servers import JetstreamServer, fixture_lines, run_until

EVENTS = fixture_lines("jetstream_events.jsonl")
# Creations of app.bsky.feed.post in the fixture (the identity and delete events are not posts).
POST_KEYS = {
    "bluesky:at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3lbtkrfvw3s2c",
    "bluesky:at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3lbtkrg2c7k2y",
    "bluesky:at://did:plc:4zutorghlchjxzgceklue4la/app.bsky.feed.post/3lbtkrga3bq2e",
    "bluesky:at://did:plc:4zutorghlchjxzgceklue4la/app.bsky.feed.post/3lbtkrgb7xq2e",
    "bluesky:at://did:plc:ragtjsm2j2vknwkz3zp4oxrd/app.bsky.feed.post/3lbtkrgd4aa2e",
    "bluesky:at://did:plc:ragtjsm2j2vknwkz3zp4oxrd/app.bsky.feed.post/3lbtkrge5bb2e",
}
MALFORMED = [
    "{this is not json",
    json.dumps({"did": "did:plc:x", "kind": "commit"}),  # no time_us
    json.dumps(
        {
            "did": "did:plc:x",
            "time_us": 1795831960000000,
            "kind": "commit",
            "commit": {
                "operation": "create",
                "collection": "app.bsky.feed.post",
                "rkey": "3lbtkrfaaaa2c",
                "record": {"$type": "app.bsky.feed.post", "createdAt": "2026-11-28T02:12:40Z"},
            },
        }
    ),  # no text
]


def settings(tmp_path: Path) -> RunnerSettings:
    return RunnerSettings(state_dir=tmp_path, backoff_scale=0.01, checkpoint_seconds=0.05)


def test_drops_malformed_and_duplicates_every_post_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = JetstreamServer(EVENTS, drops=[4, 2], extra_first=MALFORMED)
        async with server:
            sink = MemorySink()
            connector = BlueskyConnector(
                BlueskySettings(url=f"ws://127.0.0.1:{server.port}/subscribe")
            )
            runner = SourceRunner(connector, sink, settings(tmp_path))
            report = await run_until(runner, sink, len(POST_KEYS))
        assert sorted(sink.keys) == sorted(POST_KEYS)  # each exactly once
        assert report.invalid == 3
        reasons = [r["reason"] for r in report.rejects]
        assert any(r.startswith("not JSON") for r in reasons)
        assert "event has no integer time_us" in reasons
        assert "record has no text" in reasons
        assert report.reconnects >= 2
        assert report.duplicate >= 1  # the event at the resume cursor is replayed
        # Resumed from the last event read, not from scratch.
        assert server.cursors[0] is None
        assert all(c is not None for c in server.cursors[1:])
        # Every reject is on disk with its reason and the raw frame.
        lines = (tmp_path / "bluesky.rejects.jsonl").read_text().splitlines()
        assert len(lines) == 3
        assert json.loads(lines[0])["raw"] == "{this is not json"

    asyncio.run(scenario())


def test_post_fields_follow_the_schema(tmp_path: Path) -> None:
    async def scenario() -> MemorySink:
        async with JetstreamServer(EVENTS) as server:
            sink = MemorySink()
            connector = BlueskyConnector(
                BlueskySettings(url=f"{server.url}/subscribe".replace("http", "ws"))
            )
            await run_until(SourceRunner(connector, sink, settings(tmp_path)), sink, 6)
        return sink

    sink = asyncio.run(scenario())
    by_key = dict(zip(sink.keys, sink.posts, strict=True))
    reply = by_key["bluesky:at://did:plc:z72i7hdynmk6r22z27h6tvur/app.bsky.feed.post/3lbtkrg2c7k2y"]
    assert reply["reply_to"] == (
        "bluesky:at://did:plc:eygmaihciaxprqvxpfvl6flk/app.bsky.feed.post/3lbtkrfvw3s2c"
    )
    assert reply["language"] == "en"
    assert reply["created_at"] == "2026-11-28T02:12:43.100000+00:00"
    assert (
        reply["url"]
        == "https://bsky.app/profile/did:plc:z72i7hdynmk6r22z27h6tvur/post/3lbtkrg2c7k2y"
    )
    quote = by_key["bluesky:at://did:plc:4zutorghlchjxzgceklue4la/app.bsky.feed.post/3lbtkrgb7xq2e"]
    assert quote["quote_of"] == reply["reply_to"]
    # A client-written createdAt that is not a date falls back to the relay's time_us.
    odd = by_key["bluesky:at://did:plc:ragtjsm2j2vknwkz3zp4oxrd/app.bsky.feed.post/3lbtkrgd4aa2e"]
    assert odd["created_at"] == "2026-11-28T02:12:47.000007+00:00"


def test_restart_resumes_from_the_saved_cursor(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = JetstreamServer(EVENTS)
        async with server:
            url = f"ws://127.0.0.1:{server.port}/subscribe"
            first = MemorySink()
            runner = SourceRunner(
                BlueskyConnector(BlueskySettings(url=url)), first, settings(tmp_path)
            )
            await run_until(runner, first, 6)
            saved = json.loads((tmp_path / "bluesky.json").read_text())
            assert saved["cursor"]["time_us"] == 1795831968000008
            # More events arrive while the connector is stopped.
            later = json.loads(EVENTS[-1])
            later["time_us"] += 1_000_000
            later["commit"]["rkey"] = "3lbtkrgz9zz2e"
            later["commit"]["record"]["text"] = "ACME: new leak after the restart"
            server.events.append(json.dumps(later))
            second = MemorySink()
            runner = SourceRunner(
                BlueskyConnector(BlueskySettings(url=url)), second, settings(tmp_path)
            )
            report = await run_until(runner, second, 1)
        assert server.cursors[-1] == "1795831968000008"
        assert second.keys == [
            "bluesky:at://did:plc:ragtjsm2j2vknwkz3zp4oxrd/app.bsky.feed.post/3lbtkrgz9zz2e"
        ]
        assert report.duplicate == 1  # the event at the cursor, sent before the restart

    asyncio.run(scenario())


def test_rate_limited_handshake_then_watchlist_filter(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = JetstreamServer(EVENTS, refuse_first=429)
        async with server:
            sink = MemorySink()
            connector = BlueskyConnector(
                BlueskySettings(url=f"ws://127.0.0.1:{server.port}/subscribe")
            )
            runner = SourceRunner(
                connector, sink, settings(tmp_path), text_filter=lambda t: "acme" in t.lower()
            )
            report = await run_until(runner, sink, 5)
        assert report.reconnects == 1
        assert report.filtered == 1  # "Lovely weather in Lyon today"
        assert len(sink.posts) == 5
        assert all("acme" in p["text"].lower() for p in sink.posts)

    asyncio.run(scenario())
