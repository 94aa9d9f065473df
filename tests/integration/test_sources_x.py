"""X filtered-stream connector against a local server speaking the v2 stream and rules API."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipeline.settings import Secret
from pipeline.sources.base import FatalSourceError, RunnerSettings, SourceRunner
from pipeline.sources.search_terms import BrandTerms, x_rules
from pipeline.sources.sinks import MemorySink
from pipeline.sources.twitter import XConnector, XSettings
from tests.integration.source_servers import XServer, fixture_lines, run_until

TOKEN = "AAAAAAAAAAAAAAAAAAAAAtest"
LINES = fixture_lines("x_stream.jsonl")
IDS = [json.loads(line)["data"]["id"] for line in LINES]
ACME = BrandTerms(
    "acme",
    ("ACME", "Acme Corp"),
    handles=("@acme",),
    hashtags=("#acme", "#acmeleaks"),
    exclude=("acme pie",),
)
OPERATIONAL_DISCONNECT = json.dumps(
    {
        "errors": [
            {
                "title": "operational-disconnect",
                "disconnect_type": "UpstreamOperationalDisconnect",
                "detail": "This stream has been disconnected upstream for operational reasons.",
                "type": "https://api.twitter.com/2/problems/operational-disconnect",
            }
        ]
    }
)


def make_runner(
    server: XServer, sink: MemorySink, tmp_path: Path, token: str = TOKEN
) -> SourceRunner:
    settings = XSettings(api_url=server.url, bearer_token=Secret(token), stall_seconds=2.0)
    connector = XConnector(settings, rules=x_rules([ACME]))
    return SourceRunner(
        connector,
        sink,
        RunnerSettings(state_dir=tmp_path, backoff_scale=0.01, checkpoint_seconds=0.05),
    )


def test_rules_for_a_brand() -> None:
    assert x_rules([ACME]) == [
        ('("ACME" OR "Acme Corp" OR @acme OR #acme OR #acmeleaks) -"acme pie"', "vigie:acme")
    ]
    # Too long for one rule: split, same tag, each with the exclusions.
    split = x_rules([ACME], max_length=45)
    assert [tag for _, tag in split] == ["vigie:acme"] * len(split)
    assert len(split) > 1 and all(len(v) <= 45 and v.endswith('-"acme pie"') for v, _ in split)


def test_rules_sync_then_stream_with_drops_errors_and_duplicates(tmp_path: Path) -> None:
    scripts = [
        [LINES[0], LINES[1], "{oops", LINES[1]],
        [LINES[2], OPERATIONAL_DISCONNECT],
        [LINES[3], LINES[4], json.dumps({"data": {"id": "x1", "text": "no numeric id"}})],
        [],
    ]
    stale = {"id": "1", "value": '"Old Brand"', "tag": "vigie:oldbrand"}
    foreign = {"id": "2", "value": "cats has:images", "tag": "another-app"}

    async def scenario() -> None:
        server = XServer(TOKEN, rules=[stale, foreign], scripts=scripts, rate_limit_first=True)
        async with server:
            sink = MemorySink()
            runner = make_runner(server, sink, tmp_path)
            report = await run_until(runner, sink, 5)
        values = sorted((r["value"], r["tag"]) for r in server.rules.values())
        assert values == sorted([("cats has:images", "another-app"), *x_rules([ACME])])
        assert [p["id"] for p in sink.posts] == IDS  # in order, once each
        assert report.duplicate == 1
        assert report.invalid == 2
        assert {r["reason"] for r in report.rejects} == {
            "not JSON: Expecting property name enclosed in double quotes",
            "Tweet has no numeric id",
        }
        assert report.reconnects >= 4  # 429, drop, operational disconnect, drop
        params = server.stream_params[0]
        assert params["expansions"] == "author_id"
        assert "public_metrics" in params["user.fields"]

    asyncio.run(scenario())


def test_stream_objects_become_posts() -> None:
    from pipeline.sources.twitter import post_from_stream_object

    retweet = post_from_stream_object(json.loads(LINES[1]))
    assert retweet["reshare_of"] == f"twitter:{IDS[0]}"
    assert retweet["author"] == {
        "handle": "newsroom",
        "display_name": "Newsroom",
        "followers": 2100000,
        "verified": True,
    }
    assert retweet["url"] == f"https://x.com/newsroom/status/{IDS[1]}"
    assert retweet["engagement"] == {
        "likes": 20,
        "reshares": 2,
        "replies": 1,
        "quotes": 0,
        "views": 480,
    }
    assert post_from_stream_object(json.loads(LINES[2]))["reply_to"] == f"twitter:{IDS[0]}"
    assert post_from_stream_object(json.loads(LINES[3]))["quote_of"] == f"twitter:{IDS[0]}"
    assert post_from_stream_object(json.loads(LINES[4]))["language"] is None  # "und"


def test_refused_rules_and_bad_token_are_fatal(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with XServer(TOKEN) as server:
            with pytest.raises(FatalSourceError, match="VIGIE_X_BEARER_TOKEN") as caught:
                await asyncio.wait_for(
                    make_runner(server, MemorySink(), tmp_path, "wrong").run(), 10
                )
            assert "wrong" not in str(caught.value)
            long_terms = BrandTerms("big", tuple(f"brand name {i}" for i in range(60)))
            settings = XSettings(api_url=server.url, bearer_token=Secret(TOKEN))
            connector = XConnector(settings, rules=x_rules([long_terms], max_length=2000))
            runner = SourceRunner(connector, MemorySink(), RunnerSettings(state_dir=tmp_path))
            with pytest.raises(FatalSourceError, match="rules refused: .*RulesTooLong"):
                await asyncio.wait_for(runner.run(), 10)

    asyncio.run(scenario())
