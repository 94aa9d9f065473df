"""Mastodon: the streaming API (server-sent events), with timeline polling to catch up.

Wire format (docs.joinmastodon.org/methods/streaming): `GET /api/v1/streaming/public`,
`/public/local`, `/hashtag?tag=<tag>`, `/list?list=<id>` with `Authorization: Bearer`;
the body is an event stream: `event: update` + `data: <Status JSON>` per new status,
`delete` / `status.update` for changes, lines starting with `:` as heartbeats.

Streams cannot resume, so on every (re)connection the connector first pages the matching
timeline forward from the newest id it delivered (`min_id`, the documented forward
pager; the saved cursor is that `since_id`), then follows the stream. When streaming is
refused (404/401 on the streaming path, or `mode=poll`) it keeps polling the timelines.
Rate limits: `X-RateLimit-Remaining` / `X-RateLimit-Reset` (an ISO 8601 time), 429.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp

from pipeline.settings import Secret, SettingError, env_choice, env_float, env_secret, env_str
from pipeline.sources.backoff import read_within, remaining_requests, retry_after_seconds
from pipeline.sources.connector import Connector
from pipeline.sources.errors import MALFORMED, FatalSourceError, RateLimited, TransientSourceError
from pipeline.sources.items import SourceItem
from pipeline.sources.text import html_to_text, iso_from_text, new_post

__all__ = ["MastodonConnector", "MastodonSettings", "parse_streams", "post_from_status"]


@dataclass(frozen=True)
class StreamSpec:
    """One timeline: kind public | public:local | hashtag | list, with its argument."""

    kind: str
    arg: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind

    @property
    def streams(self) -> bool:
        """Search has no stream: it is always polled."""
        return self.kind != "search"

    def streaming_path(self) -> tuple[str, dict[str, str]]:
        if self.kind == "public":
            return "/api/v1/streaming/public", {}
        if self.kind == "public:local":
            return "/api/v1/streaming/public/local", {}
        if self.kind == "hashtag":
            return "/api/v1/streaming/hashtag", {"tag": self.arg}
        return "/api/v1/streaming/list", {"list": self.arg}

    def timeline_path(self) -> tuple[str, dict[str, str]]:
        if self.kind == "search":
            # Full-text search: needs the instance's search backend, and finds only posts
            # whose authors allow it (Mastodon 4.2+).
            return "/api/v2/search", {"q": self.arg, "type": "statuses", "resolve": "false"}
        if self.kind == "public":
            return "/api/v1/timelines/public", {}
        if self.kind == "public:local":
            return "/api/v1/timelines/public", {"local": "true"}
        if self.kind == "hashtag":
            return f"/api/v1/timelines/tag/{quote(self.arg, safe='')}", {}
        return f"/api/v1/timelines/list/{quote(self.arg, safe='')}", {}


def parse_streams(text: str) -> tuple[StreamSpec, ...]:
    """`public,hashtag:acme,list:42` -> specs; `#acme` is short for `hashtag:acme`."""
    specs: list[StreamSpec] = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("#"):
            specs.append(StreamSpec("hashtag", item[1:]))
        elif item in ("public", "public:local"):
            specs.append(StreamSpec(item))
        elif item.startswith(("hashtag:", "list:", "search:")):
            kind, _, arg = item.partition(":")
            if not arg:
                raise SettingError(f"VIGIE_MASTODON_STREAMS: {item!r} needs a name after ':'")
            specs.append(StreamSpec(kind, arg if kind == "search" else arg.lstrip("#")))
        else:
            raise SettingError(
                f"VIGIE_MASTODON_STREAMS: unknown stream {item!r}"
                " (public, public:local, hashtag:<tag>, list:<id>, search:<words>)"
            )
    return tuple(specs)


@dataclass(frozen=True)
class MastodonSettings:
    url: str = "https://mastodon.social"
    token: Secret = Secret("")
    streams: tuple[StreamSpec, ...] = (StreamSpec("public"),)
    mode: str = "auto"  # auto: stream, fall back to polling; stream; poll
    poll_seconds: float = 30.0
    idle_timeout: float = 120.0

    @classmethod
    def from_env(cls) -> MastodonSettings:
        streams = parse_streams(env_str("VIGIE_MASTODON_STREAMS", "public"))
        return cls(
            url=env_str("VIGIE_MASTODON_URL", cls.url).rstrip("/"),
            token=env_secret("VIGIE_MASTODON_TOKEN"),
            streams=streams or cls.streams,
            mode=env_choice("VIGIE_MASTODON_MODE", cls.mode, ("auto", "stream", "poll")),
            poll_seconds=env_float("VIGIE_MASTODON_POLL_SECONDS", cls.poll_seconds, 1.0),
            idle_timeout=env_float("VIGIE_MASTODON_IDLE_TIMEOUT", cls.idle_timeout, 1.0),
        )


def _id_newer(a: str, b: str | None) -> bool:
    """Mastodon ids are decimal strings that sort as numbers (snowflake-like)."""
    if b is None:
        return True
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return (len(a), a) > (len(b), b)


class _StreamingRefused(Exception):
    pass


class MastodonConnector(Connector):
    name: ClassVar[str] = "mastodon"

    def __init__(self, settings: MastodonSettings) -> None:
        if not settings.streams:
            raise SettingError("VIGIE_MASTODON_STREAMS: no stream to follow")
        self.settings = settings
        # Only searches (no stream exists for them), or told to: poll the timelines.
        self._streaming_refused = settings.mode == "poll" or not any(
            spec.streams for spec in settings.streams
        )

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "vigie/0.1"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token.reveal()}"
        return headers

    async def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        since: dict[str, str] = dict(cursor.get("since_id") or {})
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=None)
        async with aiohttp.ClientSession(headers=self._headers(), timeout=timeout) as session:
            # 1. catch up on what was posted while we were away
            for spec in self.settings.streams:
                async for item in self._catch_up(session, spec, since):
                    yield item
            # 2. follow the streams, or keep polling
            while True:
                if not self._streaming_refused:
                    try:
                        async for item in self._follow(session, since):
                            yield item
                        return  # the server ended the stream: reconnect (and catch up)
                    except _StreamingRefused as exc:
                        if self.settings.mode == "stream":
                            raise FatalSourceError(f"mastodon: {exc}") from None
                        self._streaming_refused = True
                        yield SourceItem(retry=f"{exc}; polling the timelines instead")
                await asyncio.sleep(self.settings.poll_seconds)
                for spec in self.settings.streams:
                    async for item in self._catch_up(session, spec, since):
                        yield item

    # -- REST timelines

    async def _catch_up(
        self, session: aiohttp.ClientSession, spec: StreamSpec, since: dict[str, str]
    ) -> AsyncIterator[SourceItem]:
        path, params = spec.timeline_path()
        last = since.get(spec.label)
        if last is None:
            # First run: start from now, not from the server's whole history.
            page = _statuses(await self._get_json(session, path, {**params, "limit": "1"}))
            if isinstance(page, list) and page and isinstance(page[0], dict):
                newest = str(page[0].get("id", ""))
                if newest:
                    since[spec.label] = newest
                    yield SourceItem.checkpoint({"since_id": {spec.label: newest}})
            return
        for _ in range(100):  # at most 4000 statuses per catch-up
            page = _statuses(
                await self._get_json(session, path, {**params, "min_id": last, "limit": "40"})
            )
            if not isinstance(page, list):
                yield SourceItem.bad(f"{path} did not return a list", page)
                return
            # min_id pages come newest first: deliver oldest first so the cursor only grows.
            statuses = [s for s in page if isinstance(s, dict)]
            statuses.sort(key=lambda s: (len(str(s.get("id", ""))), str(s.get("id", ""))))
            for status in statuses:
                sid = str(status.get("id", ""))
                item = _item(status, {})
                if sid and _id_newer(sid, last):
                    last = sid
                    since[spec.label] = sid
                    item = _item(status, {"since_id": {spec.label: sid}})
                yield item
            if len(page) < 40:
                return

    async def _get_json(
        self, session: aiohttp.ClientSession, path: str, params: dict[str, str]
    ) -> Any:
        async with session.get(self.settings.url + path, params=params) as response:
            await _check(response, path)
            remaining = remaining_requests(response.headers)
            if remaining is not None and remaining < 1:
                wait = retry_after_seconds(response.headers)
                if wait:
                    await asyncio.sleep(min(wait, 300.0))
            try:
                return await response.json(content_type=None)
            except (json.JSONDecodeError, aiohttp.ContentTypeError) as exc:
                raise TransientSourceError(f"{path}: invalid JSON ({exc})", "http") from None

    # -- server-sent events

    async def _follow(
        self, session: aiohttp.ClientSession, since: dict[str, str]
    ) -> AsyncIterator[SourceItem]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
        done = object()
        tasks = [
            asyncio.create_task(self._pump(session, spec, since, queue, done))
            for spec in self.settings.streams
        ]

        try:
            while True:
                got = await queue.get()
                if got is done:
                    return  # one stream ended: reconnect them all and catch up
                if isinstance(got, BaseException):
                    raise got
                yield got
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(
        self,
        session: aiohttp.ClientSession,
        spec: StreamSpec,
        since: dict[str, str],
        queue: asyncio.Queue[Any],
        done: object,
    ) -> None:
        try:
            if spec.streams:
                async for item in self._sse(session, spec, since):
                    await queue.put(item)
                await queue.put(done)
                return
            while True:  # a search: poll it while the other timelines stream
                await asyncio.sleep(self.settings.poll_seconds)
                async for item in self._catch_up(session, spec, since):
                    await queue.put(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, which raises it
            await queue.put(exc)

    async def _sse(
        self, session: aiohttp.ClientSession, spec: StreamSpec, since: dict[str, str]
    ) -> AsyncIterator[SourceItem]:
        path, params = spec.streaming_path()
        headers = {"Accept": "text/event-stream"}
        async with session.get(self.settings.url + path, params=params, headers=headers) as resp:
            if resp.status in (401, 404, 410, 501):
                raise _StreamingRefused(f"{path} answered HTTP {resp.status}")
            await _check(resp, path)
            event = ""
            data: list[str] = []
            while True:
                raw = await read_within(resp.content.readline(), self.settings.idle_timeout,
                                        f"{spec.label}: nothing (not even a heartbeat)")
                if not raw:
                    return  # the server closed the stream
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if line.startswith(":"):
                    continue  # heartbeat comment
                if line:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    continue
                # A blank line dispatches the event.
                if event == "update" and data:
                    payload = "\n".join(data)
                    try:
                        status = json.loads(payload)
                    except json.JSONDecodeError as exc:
                        yield SourceItem.bad(f"update event data is not JSON: {exc.msg}", payload)
                    else:
                        sid = str(status.get("id", "")) if isinstance(status, dict) else ""
                        state: dict[str, Any] = {}
                        if sid and _id_newer(sid, since.get(spec.label)):
                            since[spec.label] = sid
                            state = {"since_id": {spec.label: sid}}
                        yield _item(status, state)
                event, data = "", []


def _statuses(page: Any) -> Any:
    """Timelines answer a list of statuses; /api/v2/search an object holding one."""
    return page.get("statuses") if isinstance(page, dict) and "statuses" in page else page


async def _check(response: aiohttp.ClientResponse, path: str) -> None:
    if response.status < 400:
        return
    if response.status == 429:
        raise RateLimited(f"{path}: HTTP 429", retry_after_seconds(response.headers))
    if response.status in (401, 403):
        raise FatalSourceError(
            f"mastodon: {path} answered HTTP {response.status}: check VIGIE_MASTODON_TOKEN"
            " (scope read:statuses)"
        )
    raise TransientSourceError(f"{path}: HTTP {response.status}", "http")


def _item(status: Any, state: Mapping[str, Any]) -> SourceItem:
    try:
        return SourceItem.ok(post_from_status(status), state)
    except MALFORMED as exc:
        return SourceItem.bad(str(exc), status, state)


def post_from_status(status: Any) -> dict[str, Any]:
    """A Mastodon Status entity as a Vigie post (a boost carries the boosted status)."""
    if not isinstance(status, dict):
        raise ValueError("status is not a JSON object")
    sid = status.get("id")
    if not isinstance(sid, str) or not sid:
        raise ValueError("status has no id")
    account = status.get("account")
    if not isinstance(account, dict) or not isinstance(account.get("acct"), str):
        raise ValueError("status has no account.acct")
    created_at = iso_from_text(status.get("created_at"))
    if created_at is None:
        raise ValueError(f"status created_at is not a date: {status.get('created_at')!r}")
    boosted = status.get("reblog")
    content_of = boosted if isinstance(boosted, dict) else status
    content = content_of.get("content")
    if not isinstance(content, str):
        raise ValueError("status has no content")
    text = html_to_text(content)
    spoiler = content_of.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        text = f"{spoiler.strip()}\n\n{text}"
    quote = content_of.get("quote")
    quoted = quote.get("quoted_status") if isinstance(quote, dict) else None
    reply_id = status.get("in_reply_to_id")
    return new_post(
        platform="mastodon",
        post_id=sid,
        url=status.get("url") or status.get("uri"),
        handle=account["acct"],
        display_name=account.get("display_name") or None,
        followers=_int(account.get("followers_count")),
        verified=False,
        text=text,
        language=content_of.get("language")
        if isinstance(content_of.get("language"), str)
        else None,
        created_at=created_at,
        reply_to=f"mastodon:{reply_id}" if isinstance(reply_id, str) and reply_id else None,
        reshare_of=f"mastodon:{boosted['id']}"
        if isinstance(boosted, dict) and boosted.get("id")
        else None,
        quote_of=f"mastodon:{quoted['id']}"
        if isinstance(quoted, dict) and quoted.get("id")
        else None,
        likes=_int(status.get("favourites_count")),
        reshares=_int(status.get("reblogs_count")),
        replies=_int(status.get("replies_count")),
        quotes=_int(status.get("quotes_count")),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
