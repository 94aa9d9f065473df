"""Mastodon connector against a local server speaking the REST timelines and the SSE stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipeline.settings import Secret
from pipeline.sources.base import FatalSourceError, RunnerSettings, SourceRunner
from pipeline.sources.mastodon import MastodonConnector, MastodonSettings, parse_streams
from pipeline.sources.sinks import MemorySink
from tests.integration.source_servers import (
    MastodonServer,
    fixture_json,
    run_until,
    sse,
    wait_until,
)

STATUSES = fixture_json("mastodon_statuses.json")
TOKEN = "test-token-7f3a"
TAG = "hashtag:acme"


def ids(sink: MemorySink) -> list[str]:
    return [p["id"] for p in sink.posts]


def runner_for(
    server: MastodonServer, sink: MemorySink, tmp_path: Path, **extra: object
) -> SourceRunner:
    options: dict[str, object] = {
        "url": server.url,
        "token": Secret(TOKEN),
        "streams": parse_streams("#acme"),
        "poll_seconds": 0.1,
    }
    options.update(extra)
    settings = MastodonSettings(**options)  # type: ignore[arg-type]
    return SourceRunner(
        MastodonConnector(settings),
        sink,
        RunnerSettings(state_dir=tmp_path, backoff_scale=0.01, checkpoint_seconds=0.05),
    )


def saved_since(tmp_path: Path) -> str:
    return json.loads((tmp_path / "mastodon.json").read_text())["cursor"]["since_id"][TAG]


def test_catch_up_then_stream_then_resume_after_a_drop(tmp_path: Path) -> None:
    # A previous run stopped at status 1; 2 and 3 were posted while it was away.
    (tmp_path / "mastodon.json").write_text(
        json.dumps({"cursor": {"since_id": {TAG: STATUSES[0]["id"]}}, "recent_keys": []})
    )
    first_stream = [
        sse("update", STATUSES[3]),
        sse("update", "{broken json"),
        sse("update", STATUSES[3]),  # the same status again
        sse("status.update", STATUSES[2]),  # an edit: not a new post
        sse("delete", STATUSES[1]["id"]),
        sse("update", STATUSES[4]),
    ]

    async def scenario() -> None:
        server = MastodonServer(TOKEN, STATUSES[:3], scripts=[first_stream, []])
        async with server:
            sink = MemorySink()
            runner = runner_for(server, sink, tmp_path)
            task = asyncio.create_task(run_until(runner, sink, 5, settle=0.1))
            await wait_until(lambda: len(sink.posts) >= 4)
            # Status 6 is posted while the stream is down; the reconnect's catch-up finds it.
            server.timeline.extend(STATUSES[3:])
            report = await task
        assert ids(sink)[:2] == [STATUSES[1]["id"], STATUSES[2]["id"]]
        assert sorted(ids(sink)) == sorted(s["id"] for s in STATUSES[1:])
        assert report.invalid == 1
        assert report.rejects[0]["reason"].startswith("update event data is not JSON")
        assert report.reconnects >= 1
        assert saved_since(tmp_path) == STATUSES[5]["id"]
        catch_ups = server.hits("/api/v1/timelines/tag/acme")
        assert catch_ups[0].query["min_id"] == STATUSES[0]["id"]
        assert all(seen.headers["Authorization"] == f"Bearer {TOKEN}" for seen in server.requests)

    asyncio.run(scenario())


def test_boost_reply_and_html_become_post_fields() -> None:
    from pipeline.sources.mastodon import post_from_status

    boost = post_from_status(STATUSES[4])
    assert boost["reshare_of"] == f"mastodon:{STATUSES[3]['id']}"
    assert boost["text"].startswith("leak\n\nLeak: ACME internal memo")
    reply = post_from_status(STATUSES[2])
    assert reply["reply_to"] == f"mastodon:{STATUSES[1]['id']}"
    html = post_from_status(STATUSES[1])
    assert html["text"] == "ACME refuse de rembourser.\nTroisième appel aujourd'hui.\n\n#acme"
    assert html["author"] == {
        "handle": "marc@mamot.fr",
        "display_name": "Marc",
        "followers": 4500,
        "verified": False,
    }
    assert html["created_at"] == "2026-11-28T02:12:02+00:00"


def test_first_run_starts_now_and_falls_back_to_polling(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = MastodonServer(TOKEN, STATUSES[:2], streaming_status=404, rate_limit_first=True)
        async with server:
            sink = MemorySink()
            runner = runner_for(server, sink, tmp_path)
            task = asyncio.create_task(run_until(runner, sink, 2, settle=0.2))
            await wait_until(lambda: bool(server.hits("/api/v1/streaming/hashtag")))
            server.timeline.extend(STATUSES[2:4])
            report = await task
        # The history before the first start is not replayed; what came after is.
        assert ids(sink) == [STATUSES[2]["id"], STATUSES[3]["id"]]
        assert report.reconnects >= 2  # the 429, then "polling instead"
        assert any(s.query.get("limit") == "1" for s in server.hits("/api/v1/timelines/tag/acme"))

    asyncio.run(scenario())


def test_bad_token_stops_with_a_clear_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MastodonServer("another-token", STATUSES) as server:
            runner = runner_for(server, MemorySink(), tmp_path)
            with pytest.raises(FatalSourceError, match="VIGIE_MASTODON_TOKEN") as caught:
                await asyncio.wait_for(runner.run(), 10)
        assert TOKEN not in str(caught.value)

    asyncio.run(scenario())


def test_search_is_polled_beside_the_hashtag_stream(tmp_path: Path) -> None:
    (tmp_path / "mastodon.json").write_text(
        json.dumps(
            {
                "cursor": {"since_id": {TAG: STATUSES[5]["id"], "search:refuse": "0"}},
                "recent_keys": [],
            }
        )
    )

    async def scenario() -> None:
        server = MastodonServer(TOKEN, STATUSES, scripts=[[]])
        async with server:
            sink = MemorySink()
            runner = runner_for(
                server, sink, tmp_path, streams=parse_streams("#acme,search:refuse")
            )
            report = await run_until(runner, sink, 1, settle=0.3)
        # "refuse" is only in status 2; the stream (idle) never ended.
        assert ids(sink) == [STATUSES[1]["id"]]
        assert report.reconnects == 0
        assert len(server.hits("/api/v2/search")) >= 2
        assert server.stream_connections == 1

    asyncio.run(scenario())
