"""RSS/Atom connector against a local HTTP server serving feeds with ETag/Last-Modified."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline.settings import SettingError
from pipeline.sources.base import RunnerSettings, SourceRunner
from pipeline.sources.rss import FeedSpec, RssConnector, RssSettings, load_feeds
from pipeline.sources.sinks import MemorySink
from tests.integration.source_servers import Feed, FeedServer, fixture_text, run_until

RSS = fixture_text("feed_rss.xml").encode()
ATOM = fixture_text("feed_atom.xml").encode()
BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<rss version="2.0"><channel><title>&lol2;</title></channel></rss>"""
RSS_IDS = [
    "https://blog-conso.example/?p=4812",
    "https://blog-conso.example/?p=4790",
    "127.0.0.1/4815",  # a bare guid is made unique with the feed's host
]
ATOM_IDS = [
    "tag:retailwatch.example,2026:/acme-recall",
    "tag:retailwatch.example,2026:/holiday-outlook",
]


def feeds_for(server: FeedServer, interval: float = 900.0) -> list[FeedSpec]:
    return [
        FeedSpec(f"{server.url}/blog/feed", interval, "blog"),
        FeedSpec(f"{server.url}/news/atom.xml", interval, "news"),
        FeedSpec(f"{server.url}/bomb.xml", interval),
        FeedSpec(f"{server.url}/huge.xml", interval),
        FeedSpec(f"{server.url}/broken.xml", interval),
    ]


def make_server() -> FeedServer:
    return FeedServer(
        {
            "/blog/feed": Feed(RSS, fail_first=429),
            "/news/atom.xml": Feed(ATOM, content_type="application/atom+xml", etag='"a1"'),
            "/bomb.xml": Feed(BOMB),
            "/huge.xml": Feed(b"<rss>" + b" " * 5000 + b"</rss>"),
            "/broken.xml": Feed(b"<rss><channel><item></channel>"),
        }
    )


def runner_for(
    feeds: list[FeedSpec], sink: MemorySink, tmp_path: Path, once: bool = True
) -> SourceRunner:
    settings = RssSettings(max_bytes=4096, max_age_hours=0)
    return SourceRunner(
        RssConnector(settings, feeds),
        sink,
        RunnerSettings(state_dir=tmp_path, backoff_scale=0.01, checkpoint_seconds=0.05),
        once=once,
    )


def test_feeds_items_rejects_and_conditional_requests(tmp_path: Path) -> None:
    async def scenario() -> None:
        server = make_server()
        async with server:
            feeds = feeds_for(server)
            # A per-feed retry (the 429) then everything once.
            first = MemorySink()
            report = await run_until(runner_for(feeds, first, tmp_path, once=False), first, 5)
            assert sorted(p["id"] for p in first.posts) == sorted(RSS_IDS + ATOM_IDS)
            reasons = [r["reason"] for r in report.rejects]
            assert len(reasons) == 5

            def reported(text: str) -> bool:
                return any(text in reason for reason in reasons)

            assert reported("/bomb.xml: the document declares XML entities")
            assert reported("/huge.xml: feed larger than 4096 bytes")
            assert reported("/broken.xml: not well-formed XML")
            assert reported("/blog/feed: item has no id, link, title or text")
            assert reported("/blog/feed: item date 'le 28 novembre' is not a date")
            assert report.reconnects == 1  # the blog's 429

            # Nothing changed: conditional requests, 304s, nothing sent.
            before = len(server.requests)
            second = MemorySink()
            report = await asyncio.wait_for(runner_for(feeds, second, tmp_path).run(), 10)
            assert second.posts == [] and report.invalid == 0
            blog = [s for s in server.requests[before:] if s.path == "/blog/feed"][0]
            assert blog.headers["If-None-Match"] == '"v1"'
            assert blog.headers["If-Modified-Since"] == "Sat, 28 Nov 2026 02:06:00 GMT"

            # The blog publishes: only the new item is sent.
            new_item = (
                b"<item><title>ACME rappelle 2 millions d'appareils</title>"
                b"<link>https://blog-conso.example/2026/11/acme-rappel/</link>"
                b"<pubDate>Sat, 28 Nov 2026 02:20:00 +0000</pubDate>"
                b"<guid>https://blog-conso.example/?p=4820</guid></item>"
            )
            server.feeds["/blog/feed"] = Feed(
                RSS.replace(b"<item>", new_item + b"<item>", 1), etag='"v2"'
            )
            third = MemorySink()
            await asyncio.wait_for(runner_for(feeds, third, tmp_path).run(), 10)
        assert [p["id"] for p in third.posts] == ["https://blog-conso.example/?p=4820"]
        post = third.posts[0]
        assert post["created_at"] == "2026-11-28T02:20:00+00:00"
        assert post["platform"] == "blog"

    asyncio.run(scenario())


def test_item_fields(tmp_path: Path) -> None:
    async def scenario() -> MemorySink:
        server = make_server()
        server.feeds["/blog/feed"].fail_first = None
        async with server:
            sink = MemorySink()
            await asyncio.wait_for(runner_for(feeds_for(server)[:2], sink, tmp_path).run(), 10)
        return sink

    posts = {p["id"]: p for p in asyncio.run(scenario()).posts}
    blog = posts[RSS_IDS[0]]
    assert blog["text"] == (
        "ACME : ce que révèlent les documents internes\n\nDes documents montrent qu'ACME"
        " connaissait le défaut depuis mars.\n\nLe rappel n'a été annoncé qu'en novembre."
    )
    assert blog["author"]["handle"] == "Julie Martin"
    assert blog["url"] == "https://blog-conso.example/2026/11/acme-documents-internes/"
    assert posts[RSS_IDS[1]]["created_at"] == "2026-11-27T17:00:00+00:00"  # +0100 -> UTC
    atom = posts[ATOM_IDS[0]]
    assert atom["platform"] == "news"
    assert atom["created_at"] == "2026-11-28T02:01:00+00:00"  # published, not updated
    assert atom["text"] == "ACME recall: what we know\n\nRegulators opened an inquiry into ACME."
    assert atom["url"] == "https://retailwatch.example/2026/acme-recall"


def test_per_feed_intervals_and_max_age(tmp_path: Path) -> None:
    recent = datetime.now(UTC) - timedelta(hours=1)
    stamp = recent.strftime("%a, %d %b %Y %H:%M:%S +0000").encode()
    # Every other date in the feeds is years old, whatever day the test runs.
    fresh_feed = RSS.replace(b"Nov 2026", b"Nov 2020").replace(
        b"Sat, 28 Nov 2020 01:58:00 +0000", stamp
    )
    old_atom = ATOM.replace(b"2026-11", b"2020-11")

    async def scenario() -> None:
        server = FeedServer({"/fast": Feed(fresh_feed), "/slow": Feed(old_atom)})
        async with server:
            feeds = [FeedSpec(f"{server.url}/fast", 1.0), FeedSpec(f"{server.url}/slow", 3600.0)]
            sink = MemorySink()
            runner = SourceRunner(
                RssConnector(RssSettings(max_age_hours=48), feeds),
                sink,
                RunnerSettings(state_dir=tmp_path, checkpoint_seconds=0.05),
            )
            task = asyncio.create_task(runner.run())
            await asyncio.sleep(2.5)
            runner.stop()
            await task
        assert len(server.hits("/fast")) >= 3
        assert len(server.hits("/slow")) == 1
        # Only the blog item dated an hour ago is younger than 48 hours.
        assert [p["id"] for p in sink.posts] == [RSS_IDS[0]]

    asyncio.run(scenario())


def test_feeds_file_formats(tmp_path: Path) -> None:
    listing = tmp_path / "feeds.txt"
    listing.write_text("# blogs\nhttps://a.example/feed 300\nhttps://b.example/rss 60 news\n")
    assert load_feeds(listing) == [
        FeedSpec("https://a.example/feed", 300.0, "blog"),
        FeedSpec("https://b.example/rss", 60.0, "news"),
    ]
    yaml_file = tmp_path / "feeds.yaml"
    yaml_file.write_text(
        "feeds:\n  - {url: 'https://c.example/atom', interval: 120, platform: forum}\n"
        "  - https://d.example/feed\n"
    )
    assert load_feeds(yaml_file, default_interval=600) == [
        FeedSpec("https://c.example/atom", 120.0, "forum"),
        FeedSpec("https://d.example/feed", 600.0, "blog"),
    ]
    yaml_file.write_text("feeds:\n  - {url: 'ftp://c.example/atom'}\n")
    with pytest.raises(SettingError, match=r"feeds\[0\]: 'ftp://c.example/atom' is not an http"):
        load_feeds(yaml_file)
