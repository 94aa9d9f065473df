"""Reddit connector against a local server speaking the OAuth token and listing endpoints."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest

from pipeline.settings import Secret
from pipeline.sources.base import FatalSourceError, RunnerSettings, SourceRunner
from pipeline.sources.reddit import RedditConnector, RedditSettings, post_from_child
from pipeline.sources.search_terms import BrandTerms, reddit_query
from pipeline.sources.sinks import MemorySink
from tests.integration.source_servers import RedditServer, fixture_json

THINGS = fixture_json("reddit_things.json")
LINKS, COMMENTS = THINGS["links"], THINGS["comments"]
CLIENT_ID, CLIENT_SECRET = "vigie-test-client", "s3cret-value-42"
ACME = BrandTerms("acme", ("ACME", "Acme Corp"), hashtags=("#acmeleaks",))
NEW, COMMENTS_LABEL = "r/france+europe/new", "r/france+europe/comments"


def make_runner(
    server: RedditServer,
    sink: MemorySink,
    tmp_path: Path,
    *,
    secret: str = CLIENT_SECRET,
    subreddits: tuple[str, ...] = ("france", "europe"),
    search: bool = False,
) -> SourceRunner:
    settings = RedditSettings(
        client_id=Secret(CLIENT_ID),
        client_secret=Secret(secret),
        subreddits=subreddits,
        search=search,
        auth_url=server.url,
        api_url=server.url,
        min_request_interval=0.0,
        poll_seconds=0.05,
    )
    connector = RedditConnector(settings, queries=reddit_query([ACME]))
    return SourceRunner(
        connector, sink, RunnerSettings(state_dir=tmp_path, backoff_scale=0.01), once=True
    )


def write_state(tmp_path: Path, since: float) -> None:
    state = {"cursor": {"newest": {NEW: since, COMMENTS_LABEL: since}}, "recent_keys": []}
    (tmp_path / "reddit.json").write_text(json.dumps(state))


def test_polls_new_posts_and_comments_since_the_cursor(tmp_path: Path) -> None:
    write_state(tmp_path, LINKS[0]["data"]["created_utc"] - 1)
    malformed = [
        {"kind": "t3", "data": {"name": "t3_zz", "created_utc": LINKS[3]["data"]["created_utc"]}},
        {"kind": "t3", "data": {"name": "t3_yy"}},
    ]

    async def scenario() -> None:
        server = RedditServer(
            CLIENT_ID,
            CLIENT_SECRET,
            LINKS,
            COMMENTS,
            rate_limit_first=True,
            revoke_first_token=True,
            extra_children=malformed,
        )
        async with server:
            sink = MemorySink()
            report = await asyncio.wait_for(make_runner(server, sink, tmp_path).run(), 20)
        expected = [t["data"]["name"] for t in LINKS] + [t["data"]["name"] for t in COMMENTS]
        assert sorted(p["id"] for p in sink.posts) == sorted(expected)
        assert report.invalid == 2
        assert {r["reason"] for r in report.rejects} == {
            f"{NEW}: link has no title",
            f"{NEW}: child without created_utc",
        }
        assert report.reconnects == 1  # the 429
        assert server.tokens == ["token-1", "token-2"]  # refreshed after the 401
        agents = {seen.headers.get("User-Agent") for seen in server.requests}
        assert agents == {"server:vigie:0.1.0 (brand monitoring)"}

    asyncio.run(scenario())


def test_first_run_starts_now_then_only_new_items_even_within_one_second(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = RedditServer(CLIENT_ID, CLIENT_SECRET, LINKS, COMMENTS)
        async with server:
            first = MemorySink()
            await asyncio.wait_for(make_runner(server, first, tmp_path).run(), 20)
            assert first.posts == []  # no replay of what was there before the first start
            # Another link in the same second as the newest one seen, and a later comment.
            twin = copy.deepcopy(LINKS[3])
            twin["data"].update(name="t3_1h9xq2z", id="1h9xq2z", title="ACME encore")
            later = copy.deepcopy(COMMENTS[2])
            later["data"].update(name="t1_m9kq7z", id="m9kq7z", created_utc=1795832000.0)
            server.links.append(twin)
            server.comments.append(later)
            second = MemorySink()
            report = await asyncio.wait_for(make_runner(server, second, tmp_path).run(), 20)
        assert sorted(p["id"] for p in second.posts) == ["t1_m9kq7z", "t3_1h9xq2z"]
        assert report.duplicate == 0

    asyncio.run(scenario())


def test_search_uses_watchlist_terms(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = RedditServer(CLIENT_ID, CLIENT_SECRET, LINKS, COMMENTS)
        async with server:
            label = f"search:{reddit_query([ACME])[0]}"
            state = {"cursor": {"newest": {label: 0.5}}, "recent_keys": []}
            (tmp_path / "reddit.json").write_text(json.dumps(state))
            sink = MemorySink()
            runner = make_runner(server, sink, tmp_path, subreddits=(), search=True)
            await asyncio.wait_for(runner.run(), 20)
        searched = server.hits("/search")[0].query
        assert searched["q"] == '"ACME" OR "Acme Corp" OR "acmeleaks"'
        assert searched["sort"] == "new"
        assert sorted(p["id"] for p in sink.posts) == ["t3_1h1xq2z", "t3_1h2xq2z", "t3_1h4xq2z"]

    asyncio.run(scenario())


def test_things_become_posts() -> None:
    crosspost = post_from_child(LINKS[1])
    assert crosspost["reshare_of"] == "reddit:t3_1h1xq2z"
    assert crosspost["engagement"]["likes"] == 540
    assert crosspost["url"] == "https://www.reddit.com/r/europe/comments/1h2xq2z/post_2/"
    reply = post_from_child(COMMENTS[1])
    assert reply["reply_to"] == "reddit:t1_m1kq7z"
    assert reply["created_at"] == "2026-11-28T02:12:05+00:00"


def test_wrong_secret_is_fatal_and_never_printed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with RedditServer(CLIENT_ID, CLIENT_SECRET, LINKS, COMMENTS) as server:
            runner = make_runner(server, MemorySink(), tmp_path, secret="wrong-secret-xyz")
            with pytest.raises(FatalSourceError, match="VIGIE_REDDIT_CLIENT_SECRET") as caught:
                await asyncio.wait_for(runner.run(), 10)
        assert "wrong-secret-xyz" not in str(caught.value)

    asyncio.run(scenario())
