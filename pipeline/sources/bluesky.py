"""Bluesky through Jetstream: the public WebSocket stream of new `app.bsky.feed.post` records.

Wire format (github.com/bluesky-social/jetstream): connect to
`wss://<host>/subscribe?wantedCollections=app.bsky.feed.post[&cursor=<time_us>]`; every
text message is one JSON event `{"did", "time_us", "kind": "commit"|"identity"|"account",
"commit": {"operation": "create"|"update"|"delete", "collection", "rkey", "cid",
"record": {"$type": "app.bsky.feed.post", "text", "createdAt", "langs", "reply", "embed"}}}`.
`time_us` (Unix microseconds) is the resume cursor. No credentials. Jetstream cannot filter
by text, so the watchlist filter runs here, on every post.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlencode

import aiohttp

from pipeline.settings import env_float, env_str
from pipeline.sources.backoff import retry_after_seconds
from pipeline.sources.connector import Connector
from pipeline.sources.errors import MALFORMED, FatalSourceError, RateLimited, TransientSourceError
from pipeline.sources.items import SourceItem
from pipeline.sources.text import iso_from_epoch, iso_from_text, new_post

__all__ = ["BlueskyConnector", "BlueskySettings", "post_from_event"]

POST_COLLECTION = "app.bsky.feed.post"


@dataclass(frozen=True)
class BlueskySettings:
    url: str = "wss://jetstream2.us-east.bsky.network/subscribe"
    idle_timeout: float = 60.0
    rewind_seconds: float = 0.0

    @classmethod
    def from_env(cls) -> BlueskySettings:
        return cls(
            url=env_str("VIGIE_BLUESKY_URL", cls.url),
            idle_timeout=env_float("VIGIE_BLUESKY_IDLE_TIMEOUT", cls.idle_timeout, 1.0),
            rewind_seconds=env_float("VIGIE_BLUESKY_REWIND_SECONDS", cls.rewind_seconds, 0.0),
        )


class BlueskyConnector(Connector):
    name: ClassVar[str] = "bluesky"

    def __init__(self, settings: BlueskySettings) -> None:
        self.settings = settings

    def subscribe_url(self, cursor: Mapping[str, Any]) -> str:
        params: list[tuple[str, str]] = [("wantedCollections", POST_COLLECTION)]
        time_us = cursor.get("time_us")
        if isinstance(time_us, int) and time_us > 0:
            # Rewinding a little gives gapless playback when switching instances; the
            # runner's recent keys drop what was already sent.
            rewind = int(self.settings.rewind_seconds * 1_000_000)
            params.append(("cursor", str(max(1, time_us - rewind))))
        separator = "&" if "?" in self.settings.url else "?"
        return self.settings.url + separator + urlencode(params)

    async def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        url = self.subscribe_url(cursor)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                ws = await session.ws_connect(url, heartbeat=30, max_msg_size=4 * 1024 * 1024)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status == 429:
                    raise RateLimited(
                        "bluesky: HTTP 429 on subscribe", retry_after_seconds(exc.headers or {})
                    ) from None
                if exc.status in (401, 403, 404):
                    raise FatalSourceError(
                        f"bluesky: {self.settings.url} refused the subscription (HTTP {exc.status})"
                    ) from None
                raise TransientSourceError(f"handshake failed: HTTP {exc.status}", "http") from None
            async with ws:
                while True:
                    try:
                        message = await ws.receive(timeout=self.settings.idle_timeout)
                    except TimeoutError:
                        raise TransientSourceError(
                            f"no event for {self.settings.idle_timeout:.0f} s"
                        ) from None
                    if message.type == aiohttp.WSMsgType.TEXT:
                        yield item_from_message(message.data)
                    elif message.type == aiohttp.WSMsgType.BINARY:
                        yield SourceItem.bad(
                            "binary frame (compressed streams are not supported)",
                            message.data[:200],
                        )
                    elif message.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.CLOSED,
                    ):
                        return
                    elif message.type == aiohttp.WSMsgType.ERROR:
                        raise TransientSourceError(f"websocket error: {ws.exception()}")


def item_from_message(data: str) -> SourceItem:
    """One Jetstream text frame -> a post, a reject, or a bare cursor checkpoint."""
    try:
        event = json.loads(data)
    except json.JSONDecodeError as exc:
        return SourceItem.bad(f"not JSON: {exc.msg}", data)
    if not isinstance(event, dict):
        return SourceItem.bad("event is not a JSON object", data)
    time_us = event.get("time_us")
    if not isinstance(time_us, int) or isinstance(time_us, bool):
        return SourceItem.bad("event has no integer time_us", event)
    state = {"time_us": time_us}
    if event.get("kind") != "commit":
        return SourceItem.checkpoint(state)
    commit = event.get("commit")
    if not isinstance(commit, dict):
        return SourceItem.bad("commit event without a commit object", event, state)
    if commit.get("collection") != POST_COLLECTION or commit.get("operation") != "create":
        return SourceItem.checkpoint(state)  # edits, deletions, other collections
    try:
        post = post_from_event(event)
    except MALFORMED as exc:
        return SourceItem.bad(str(exc), event, state)
    return SourceItem.ok(post, state)


def post_from_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A Jetstream `create` commit of `app.bsky.feed.post` as a Vigie post."""
    did = event.get("did")
    commit = event.get("commit") or {}
    rkey = commit.get("rkey")
    record = commit.get("record")
    if not isinstance(did, str) or not did.startswith("did:"):
        raise ValueError("event has no author did")
    if not isinstance(rkey, str) or not rkey:
        raise ValueError("commit has no rkey")
    if not isinstance(record, dict):
        raise ValueError("commit has no record")
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError("record has no text")
    # createdAt is written by the client; fall back to the relay's time if it is unusable.
    created_at = iso_from_text(record.get("createdAt")) or iso_from_epoch(
        event["time_us"] / 1_000_000
    )
    langs = record.get("langs")
    language = langs[0] if isinstance(langs, list) and langs and isinstance(langs[0], str) else None
    uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
    return new_post(
        platform="bluesky",
        post_id=uri,
        url=f"https://bsky.app/profile/{did}/post/{rkey}",
        handle=did,  # Jetstream carries DIDs only; resolving handles would cost a call per author
        display_name=None,
        followers=0,
        verified=False,
        text=text,
        language=language,
        created_at=created_at,
        reply_to=_key(_path(record, "reply", "parent", "uri")),
        quote_of=_key(_quoted_uri(record.get("embed"))),
    )


def _path(obj: Any, *names: str) -> Any:
    for name in names:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def _quoted_uri(embed: Any) -> Any:
    if not isinstance(embed, dict):
        return None
    kind = embed.get("$type")
    if kind == "app.bsky.embed.record":
        return _path(embed, "record", "uri")
    if kind == "app.bsky.embed.recordWithMedia":
        return _path(embed, "record", "record", "uri")
    return None


def _key(uri: Any) -> str | None:
    if isinstance(uri, str) and uri.startswith("at://") and f"/{POST_COLLECTION}/" in uri:
        return f"bluesky:{uri}"
    return None
