"""RSS and Atom feeds (blogs, news, forums): many feeds, each on its own interval.

Formats: RSS 2.0 (`rss/channel/item`: guid, link, title, description,
content:encoded, pubDate in RFC 822, author or dc:creator), RSS 1.0/RDF, and Atom
(RFC 4287: `feed/entry`: id, link rel=alternate, title, summary/content, published or
updated, author/name). Each item becomes a post dated by its own date.

Polite fetching: conditional GET (`If-None-Match` with the last ETag,
`If-Modified-Since` with the last Last-Modified; 304 costs nothing), per-feed intervals,
a per-feed backoff after errors that honours Retry-After, a few feeds at a time.
Untrusted XML: a size cap and no DTD entity declarations (the "billion laughs" and
external-entity attacks need them), parsed with defusedxml.

Resume state per feed: ETag, Last-Modified, the ids in the last document (an item is new
when its id was not there) and when the feed was last checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import yaml
from defusedxml.ElementTree import fromstring as defused_fromstring

from pipeline.settings import SettingError, env_float, env_int, env_str
from pipeline.sources.backoff import retry_after_seconds
from pipeline.sources.connector import Connector
from pipeline.sources.errors import MALFORMED
from pipeline.sources.items import SourceItem
from pipeline.sources.text import html_to_text, iso_from_text, new_post

__all__ = ["FeedSpec", "RssConnector", "RssSettings", "load_feeds", "parse_feed"]

PLATFORMS = ("blog", "news", "forum", "other")
ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
RSS1 = "{http://purl.org/rss/1.0/}"


@dataclass(frozen=True)
class FeedSpec:
    url: str
    interval: float = 900.0
    platform: str = "blog"
    name: str = ""


def load_feeds(path: Path, default_interval: float = 900.0) -> list[FeedSpec]:
    """Feeds from YAML (`feeds: [{url, interval, platform, name}]`) or from a text file with
    one `URL [interval_seconds] [platform]` per line (`#` starts a comment)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingError(f"VIGIE_RSS_FEEDS_FILE: cannot read {path}: {exc.strerror}") from None
    feeds: list[FeedSpec] = []
    if path.suffix in (".yaml", ".yml"):
        try:
            document = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise SettingError(f"{path}: not valid YAML: {exc}") from None
        entries = document.get("feeds", []) if isinstance(document, dict) else document
        if not isinstance(entries, list):
            raise SettingError(f"{path}: expected a list under 'feeds'")
        for number, entry in enumerate(entries):
            if isinstance(entry, str):
                entry = {"url": entry}
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                raise SettingError(f"{path}: feeds[{number}]: needs a url")
            feeds.append(
                _spec(
                    path,
                    f"feeds[{number}]",
                    entry["url"],
                    entry.get("interval"),
                    entry.get("platform"),
                    str(entry.get("name", "")),
                    default_interval,
                )
            )
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            parts = line.split("#", 1)[0].split()
            if not parts:
                continue
            interval = parts[1] if len(parts) > 1 else None
            platform = parts[2] if len(parts) > 2 else None
            feeds.append(
                _spec(path, f"line {number}", parts[0], interval, platform, "", default_interval)
            )
    urls = [f.url for f in feeds]
    duplicates = {u for u in urls if urls.count(u) > 1}
    if duplicates:
        raise SettingError(f"{path}: feeds listed twice: {', '.join(sorted(duplicates))}")
    return feeds


def _spec(
    path: Path, where: str, url: str, interval: Any, platform: Any, name: str, default: float
) -> FeedSpec:
    if not url.startswith(("http://", "https://")):
        raise SettingError(f"{path}: {where}: {url!r} is not an http(s) URL")
    try:
        seconds = float(interval) if interval is not None else default
    except (TypeError, ValueError):
        raise SettingError(f"{path}: {where}: interval {interval!r} is not a number") from None
    if seconds < 1:
        raise SettingError(f"{path}: {where}: interval must be at least 1 second")
    kind = str(platform or "blog")
    if kind not in PLATFORMS:
        raise SettingError(f"{path}: {where}: platform must be one of {', '.join(PLATFORMS)}")
    return FeedSpec(url=url, interval=seconds, platform=kind, name=name)


@dataclass(frozen=True)
class RssSettings:
    feeds_file: str = ""
    default_interval: float = 900.0
    max_bytes: int = 5_000_000
    max_age_hours: float = 48.0
    concurrency: int = 8
    timeout: float = 30.0
    user_agent: str = "vigie/0.1 (feed reader; brand monitoring)"
    max_backoff: float = 6 * 3600.0

    @classmethod
    def from_env(cls) -> RssSettings:
        return cls(
            feeds_file=env_str("VIGIE_RSS_FEEDS_FILE", ""),
            default_interval=env_float("VIGIE_RSS_INTERVAL", cls.default_interval, 1.0),
            max_bytes=env_int("VIGIE_RSS_MAX_BYTES", cls.max_bytes, minimum=1024),
            max_age_hours=env_float("VIGIE_RSS_MAX_AGE_HOURS", cls.max_age_hours, 0.0),
            concurrency=env_int("VIGIE_RSS_CONCURRENCY", cls.concurrency, minimum=1),
            timeout=env_float("VIGIE_RSS_TIMEOUT", cls.timeout, 1.0),
            user_agent=env_str("VIGIE_RSS_USER_AGENT", cls.user_agent),
        )


class FeedError(Exception):
    """A feed that cannot be read this time; `retry_after` when the server said so."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class _FeedClock:
    due: float
    failures: int = 0


@dataclass
class Entry:
    """One item of a feed, before it becomes a post."""

    id: str
    link: str | None
    title: str
    body: str
    author: str | None
    date: str | None
    problems: list[str] = field(default_factory=list)


class RssConnector(Connector):
    name: ClassVar[str] = "rss"

    def __init__(self, settings: RssSettings, feeds: list[FeedSpec]) -> None:
        if not feeds:
            raise SettingError("VIGIE_RSS_FEEDS_FILE: no feed to read")
        self.settings = settings
        self.feeds = feeds
        self._clocks: dict[str, _FeedClock] = {}

    async def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        states: dict[str, dict[str, Any]] = {
            url: dict(value) for url, value in (cursor.get("feeds") or {}).items()
        }
        now = time.time()
        for feed in self.feeds:
            if feed.url not in self._clocks:
                checked = states.get(feed.url, {}).get("checked_at")
                # After a restart a feed is due when its interval has passed, not at once.
                due = float(checked) + feed.interval if isinstance(checked, int | float) else now
                self._clocks[feed.url] = _FeedClock(due=min(due, now + feed.interval))
        if self.single_pass:
            for clock in self._clocks.values():
                clock.due = 0.0
        semaphore = asyncio.Semaphore(self.settings.concurrency)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout)
        headers = {
            "User-Agent": self.settings.user_agent,
            "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.5",
        }
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while True:
                now = time.time()
                due = [f for f in self.feeds if self._clocks[f.url].due <= now]
                results = await asyncio.gather(
                    *(self._read(session, semaphore, feed, states) for feed in due)
                )
                for items in results:
                    for item in items:
                        yield item
                if self.single_pass:
                    return
                next_due = min(clock.due for clock in self._clocks.values())
                await asyncio.sleep(max(0.05, next_due - time.time()))

    async def _read(
        self,
        session: aiohttp.ClientSession,
        semaphore: asyncio.Semaphore,
        feed: FeedSpec,
        states: dict[str, dict[str, Any]],
    ) -> list[SourceItem]:
        clock = self._clocks[feed.url]
        state = states.setdefault(feed.url, {})
        async with semaphore:
            try:
                items = await self._fetch(session, feed, state)
            except FeedError as exc:
                clock.failures += 1
                delay = exc.retry_after
                if delay is None:
                    delay = min(
                        feed.interval * 2 ** min(clock.failures, 16), self.settings.max_backoff
                    )
                    delay = delay / 2 + random.uniform(0, delay / 2)
                clock.due = time.time() + delay
                return [SourceItem(retry=f"{feed.url}: {exc} (next try in {delay:.0f} s)")]
        clock.failures = 0
        clock.due = time.time() + feed.interval
        return items

    async def _fetch(
        self, session: aiohttp.ClientSession, feed: FeedSpec, state: dict[str, Any]
    ) -> list[SourceItem]:
        headers: dict[str, str] = {}
        if state.get("etag"):
            headers["If-None-Match"] = state["etag"]
        if state.get("last_modified"):
            headers["If-Modified-Since"] = state["last_modified"]
        try:
            async with session.get(feed.url, headers=headers) as response:
                if response.status == 304:
                    state["checked_at"] = time.time()
                    return [
                        SourceItem.checkpoint(
                            {"feeds": {feed.url: {"checked_at": state["checked_at"]}}}
                        )
                    ]
                if response.status in (429, 503):
                    raise FeedError(
                        f"HTTP {response.status}", retry_after_seconds(response.headers)
                    )
                if response.status >= 400:
                    raise FeedError(f"HTTP {response.status}")
                body = await response.content.read(self.settings.max_bytes + 1)
                etag = response.headers.get("ETag")
                last_modified = response.headers.get("Last-Modified")
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise FeedError(f"{type(exc).__name__}: {exc}") from None
        checked_at = time.time()
        patch: dict[str, Any] = {
            "checked_at": checked_at,
            "etag": etag,
            "last_modified": last_modified,
        }
        # A bad document is reported once: its validators are kept, so the same document
        # comes back as a 304 and a fixed one (new ETag) is read in full.
        if len(body) > self.settings.max_bytes:
            state.update(patch)
            return [
                SourceItem.bad(
                    f"{feed.url}: feed larger than {self.settings.max_bytes} bytes",
                    body[:200],
                    {"feeds": {feed.url: patch}},
                )
            ]
        try:
            title, entries = parse_feed(body)
        except ValueError as exc:
            state.update(patch)
            return [SourceItem.bad(f"{feed.url}: {exc}", body[:500], {"feeds": {feed.url: patch}})]
        previous = set(state.get("seen") or ())
        oldest = datetime.now(UTC) - timedelta(hours=self.settings.max_age_hours)
        items: list[SourceItem] = []
        for entry in entries:
            if entry.id in previous:
                continue
            if entry.problems:
                items.append(
                    SourceItem.bad(f"{feed.url}: {'; '.join(entry.problems)}", entry.__dict__)
                )
                continue
            created_at = entry.date or datetime.fromtimestamp(checked_at, UTC).isoformat()
            if self.settings.max_age_hours and datetime.fromisoformat(created_at) < oldest:
                continue  # an old item seen for the first time (first run, feed reshuffle)
            try:
                items.append(SourceItem.ok(_post(feed, title, entry, created_at)))
            except MALFORMED as exc:
                items.append(SourceItem.bad(f"{feed.url}: {exc}", entry.__dict__))
        patch["seen"] = [e.id for e in entries][:2000]
        state.update(patch)
        items.append(SourceItem.checkpoint({"feeds": {feed.url: patch}}))
        return items


def _post(feed: FeedSpec, feed_title: str, entry: Entry, created_at: str) -> dict[str, Any]:
    host = urlsplit(entry.link or feed.url).hostname or urlsplit(feed.url).hostname or "feed"
    text = entry.title.strip()
    if entry.body:
        text = f"{text}\n\n{entry.body}" if text else entry.body
    return new_post(
        platform=feed.platform,
        post_id=_post_id(entry.id, feed.url),
        url=entry.link,
        handle=entry.author or host,
        display_name=entry.author or feed.name or feed_title or host,
        followers=0,
        verified=False,
        text=text,
        language=None,
        created_at=created_at,
    )


def _post_id(entry_id: str, feed_url: str) -> str:
    # Permalink-like ids are global; a bare "123" is only unique within its feed.
    if not entry_id.startswith(("http://", "https://", "tag:", "urn:")):
        entry_id = f"{urlsplit(feed_url).hostname}/{entry_id}"
    if len(entry_id) > 300:
        entry_id = "sha1:" + hashlib.sha1(entry_id.encode()).hexdigest()
    return entry_id


# --------------------------------------------------------------------------- parsing


def _safe_root(document: bytes) -> ET.Element:
    if b"<!ENTITY" in document:
        raise ValueError("the document declares XML entities (refused: entity expansion attacks)")
    try:
        return defused_fromstring(document)
    except ET.ParseError as exc:
        raise ValueError(f"not well-formed XML ({exc})") from None


def _text(element: ET.Element | None) -> str:
    return "".join(element.itertext()).strip() if element is not None else ""


def parse_feed(document: bytes) -> tuple[str, list[Entry]]:
    """(feed title, entries) of an RSS 2.0, RSS 1.0 or Atom document; ValueError if none."""
    root = _safe_root(document)
    if root.tag == f"{ATOM}feed":
        return _text(root.find(f"{ATOM}title")), [
            _atom_entry(e) for e in root.findall(f"{ATOM}entry")
        ]
    if root.tag == "rss":
        channel = root.find("channel")
        if channel is None:
            raise ValueError("RSS document without a channel")
        return _text(channel.find("title")), [_rss_item(i, "") for i in channel.findall("item")]
    if root.tag.endswith("}RDF"):
        channel = root.find(f"{RSS1}channel")
        return _text(channel.find(f"{RSS1}title") if channel is not None else None), [
            _rss_item(i, RSS1) for i in root.findall(f"{RSS1}item")
        ]
    raise ValueError(f"not an RSS or Atom document (root element {root.tag!r})")


def _rss_item(item: ET.Element, ns: str) -> Entry:
    link = _text(item.find(f"{ns}link")) or None
    guid = _text(item.find("guid")) or item.get(
        "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}about"
    )
    title = _text(item.find(f"{ns}title"))
    body_html = _text(item.find(f"{CONTENT}encoded")) or _text(item.find(f"{ns}description"))
    raw_date = _text(item.find("pubDate")) or _text(item.find(f"{DC}date"))
    author = _text(item.find(f"{DC}creator")) or _text(item.find("author")) or None
    return _entry(guid or link, link, title, body_html, author, raw_date)


def _atom_entry(entry: ET.Element) -> Entry:
    link = None
    for candidate in entry.findall(f"{ATOM}link"):
        if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
            link = candidate.get("href")
            break
    content = entry.find(f"{ATOM}content")
    summary = entry.find(f"{ATOM}summary")
    body_html = _text(content) or _text(summary)
    raw_date = _text(entry.find(f"{ATOM}published")) or _text(entry.find(f"{ATOM}updated"))
    author = _text(entry.find(f"{ATOM}author/{ATOM}name")) or None
    return _entry(
        _text(entry.find(f"{ATOM}id")) or link,
        link,
        _text(entry.find(f"{ATOM}title")),
        body_html,
        author,
        raw_date,
    )


def _entry(
    entry_id: str | None,
    link: str | None,
    title: str,
    body_html: str,
    author: str | None,
    raw_date: str,
) -> Entry:
    problems: list[str] = []
    body = html_to_text(body_html) if body_html else ""
    if not entry_id:
        if title or body:
            # No guid, id or link: the content itself is the identity.
            entry_id = "sha1:" + hashlib.sha1(f"{title}\n{body}".encode()).hexdigest()
        else:
            entry_id = "empty"
            problems.append("item has no id, link, title or text")
    if not title and not body and not problems:
        problems.append("item has no title or text")
    if link is not None and not link.startswith(("http://", "https://")):
        link = None
    date = iso_from_text(raw_date) if raw_date else None
    if raw_date and date is None:
        problems.append(f"item date {raw_date[:40]!r} is not a date")
    return Entry(
        entry_id, link, html_to_text(title) if "<" in title else title, body, author, date, problems
    )
