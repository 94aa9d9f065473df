"""X (Twitter) API v2 filtered stream, with rules kept in step with the watchlist.

Wire format (docs.x.com, filtered stream): rules live at `/2/tweets/search/stream/rules`
(GET lists `{"data": [{"id", "value", "tag"}]}`; POST `{"add": [{"value", "tag"}]}` or
`{"delete": {"ids": [...]}}`). The stream `GET /2/tweets/search/stream` answers one JSON
object per line, `{"data": Tweet, "includes": {"users": [...]}, "matching_rules": [...]}`,
and a bare `\\r\\n` keep-alive every 20 s; `{"errors": [...]}` alone announces a
disconnect. Auth: `Authorization: Bearer <app token>`.

Rules: every rule this connector owns is tagged `vigie:<brand>`; on start the connector
deletes its rules that the watchlist no longer asks for and adds the missing ones, and
leaves rules with other tags alone (they may belong to another app on the same token).

Reconnects follow the documented policy: an established connection that drops is
reopened at once; network errors back off linearly by 250 ms up to 16 s; HTTP errors
exponentially from 5 s up to 320 s; 429 from 1 minute, doubling (or until
`x-rate-limit-reset`). X has no resume cursor: with `VIGIE_X_BACKFILL_MINUTES` (Pro and
Enterprise access) a reconnect asks for up to 5 minutes of missed posts; the runner's
recent keys drop those already sent.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp

from pipeline.settings import Secret, env_float, env_int, env_secret, env_str
from pipeline.sources.backoff import BackoffPolicy, read_within, retry_after_seconds
from pipeline.sources.connector import Connector
from pipeline.sources.errors import MALFORMED, FatalSourceError, RateLimited, TransientSourceError
from pipeline.sources.items import SourceItem
from pipeline.sources.text import iso_from_epoch, iso_from_text, new_post

__all__ = ["XConnector", "XSettings", "post_from_stream_object"]

RULE_TAG_PREFIX = "vigie:"
STREAM_PARAMS = {
    "tweet.fields": "created_at,lang,public_metrics,referenced_tweets,author_id,conversation_id",
    "expansions": "author_id",
    "user.fields": "username,name,public_metrics,verified",
}


@dataclass(frozen=True)
class XSettings:
    api_url: str = "https://api.x.com"
    bearer_token: Secret = Secret("")
    stall_seconds: float = 30.0  # keep-alives come every 20 s
    backfill_minutes: int = 0
    rule_max_length: int = 512
    rules: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_env(cls) -> XSettings:
        return cls(
            api_url=env_str("VIGIE_X_API_URL", cls.api_url).rstrip("/"),
            bearer_token=env_secret("VIGIE_X_BEARER_TOKEN"),
            stall_seconds=env_float("VIGIE_X_STALL_SECONDS", cls.stall_seconds, 1.0),
            backfill_minutes=min(5, env_int("VIGIE_X_BACKFILL_MINUTES", 0, minimum=0)),
            rule_max_length=env_int("VIGIE_X_RULE_MAX_LENGTH", cls.rule_max_length, 16),
        )


class XConnector(Connector):
    name: ClassVar[str] = "x"
    policies: ClassVar[Mapping[str, BackoffPolicy]] = {
        "network": BackoffPolicy(0.25, 16.0, factor=1.0, step=0.25),
        "http": BackoffPolicy(5.0, 320.0),
        "rate_limit": BackoffPolicy(60.0, 960.0),
    }

    def __init__(self, settings: XSettings, rules: Sequence[tuple[str, str]] | None = None) -> None:
        if not settings.bearer_token:
            raise FatalSourceError("x: VIGIE_X_BEARER_TOKEN is not set")
        self.settings = settings
        self.rules = list(rules if rules is not None else settings.rules)
        self._rules_synced = False
        self.sync_report: dict[str, int] = {}

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.settings.bearer_token.reveal()}",
            "User-Agent": "vigie/0.1",
        }

    async def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(headers=self._headers(), timeout=timeout) as session:
            if not self._rules_synced:
                await self.sync_rules(session)
                self._rules_synced = True
            params = dict(STREAM_PARAMS)
            backfill = self._backfill(cursor)
            if backfill:
                params["backfill_minutes"] = str(backfill)
            url = f"{self.settings.api_url}/2/tweets/search/stream"
            async with session.get(url, params=params) as response:
                await _check(response, "stream")
                buffer = b""
                while True:
                    chunk = await read_within(response.content.readany(),
                                              self.settings.stall_seconds,
                                              "stream stalled: no data or keep-alive")
                    if not chunk:
                        return
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for raw in lines:
                        line = raw.strip()
                        if not line:
                            continue  # keep-alive
                        item = item_from_line(line)
                        if item is None:
                            continue
                        yield item

    def _backfill(self, cursor: Mapping[str, Any]) -> int:
        if not self.settings.backfill_minutes:
            return 0
        last = cursor.get("last_seen_epoch")
        if not isinstance(last, int | float):
            return 0
        gap = time.time() - float(last)
        if gap <= 0:
            return 0
        return min(self.settings.backfill_minutes, max(1, math.ceil(gap / 60)))

    async def sync_rules(self, session: aiohttp.ClientSession) -> None:
        """Make the rules tagged `vigie:*` exactly the watchlist's, leave the others."""
        url = f"{self.settings.api_url}/2/tweets/search/stream/rules"
        async with session.get(url) as response:
            await _check(response, "rules")
            current = (await response.json(content_type=None)).get("data") or []
        desired = {(value, tag) for value, tag in self.rules}
        ours = [r for r in current if str(r.get("tag", "")).startswith(RULE_TAG_PREFIX)]
        stale = [r["id"] for r in ours if (r.get("value"), r.get("tag")) not in desired]
        present = {(r.get("value"), r.get("tag")) for r in ours}
        missing = [{"value": v, "tag": t} for v, t in self.rules if (v, t) not in present]
        if stale:
            async with session.post(url, json={"delete": {"ids": stale}}) as response:
                await _check(response, "rules")
        if missing:
            async with session.post(url, json={"add": missing}) as response:
                await _check(response, "rules")
                answer = await response.json(content_type=None)
            errors = answer.get("errors") or []
            if errors:
                details = "; ".join(
                    f"{e.get('value', '?')}: {e.get('title') or e.get('detail') or e}"
                    for e in errors
                )
                raise FatalSourceError(f"x: rules refused: {details}")
        self.sync_report = {
            "kept": len(ours) - len(stale),
            "deleted": len(stale),
            "added": len(missing),
        }


async def _check(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status < 400:
        return
    body = (await response.text())[:300]
    if response.status == 429:
        raise RateLimited(f"x {what}: HTTP 429", retry_after_seconds(response.headers))
    if response.status in (401, 403):
        raise FatalSourceError(
            f"x {what}: HTTP {response.status}: check VIGIE_X_BEARER_TOKEN and the app's"
            f" access level ({body})"
        )
    raise TransientSourceError(f"x {what}: HTTP {response.status} {body}", "http")


def item_from_line(line: bytes) -> SourceItem | None:
    try:
        message = json.loads(line)
    except json.JSONDecodeError as exc:
        return SourceItem.bad(f"not JSON: {exc.msg}", line)
    if not isinstance(message, dict):
        return SourceItem.bad("stream line is not a JSON object", line)
    if "data" not in message:
        errors = message.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else {}
            title = first.get("title") or first.get("detail") if isinstance(first, dict) else None
            raise TransientSourceError(f"x stream: {title or 'error'}")
        return SourceItem.bad("stream object has neither data nor errors", message)
    try:
        post = post_from_stream_object(message)
    except MALFORMED as exc:
        return SourceItem.bad(str(exc), message, {"last_seen_epoch": time.time()})
    return SourceItem.ok(post, {"last_seen_epoch": time.time()})


def post_from_stream_object(message: Mapping[str, Any]) -> dict[str, Any]:
    """`{"data": Tweet, "includes": {"users": [...]}}` as a Vigie post."""
    tweet = message.get("data")
    if not isinstance(tweet, dict):
        raise ValueError("data is not a Tweet object")
    tweet_id = tweet.get("id")
    text = tweet.get("text")
    if not isinstance(tweet_id, str) or not tweet_id.isdigit():
        raise ValueError("Tweet has no numeric id")
    if not isinstance(text, str):
        raise ValueError("Tweet has no text")
    created_at = iso_from_text(tweet.get("created_at"))
    if created_at is None:
        # A snowflake id holds its creation time (ms since 2010-11-04T01:42:54.657Z).
        created_at = iso_from_epoch(((int(tweet_id) >> 22) + 1288834974657) / 1000)
    users = (message.get("includes") or {}).get("users") or []
    author = next(
        (u for u in users if isinstance(u, dict) and u.get("id") == tweet.get("author_id")), {}
    )
    username = author.get("username") or tweet.get("author_id") or "unknown"
    references: dict[str, str] = {}
    for ref in tweet.get("referenced_tweets") or []:
        if isinstance(ref, dict) and isinstance(ref.get("id"), str):
            references[str(ref.get("type"))] = f"twitter:{ref['id']}"
    metrics = tweet.get("public_metrics") or {}
    user_metrics = author.get("public_metrics") or {}
    language = tweet.get("lang")
    return new_post(
        platform="twitter",
        post_id=tweet_id,
        url=f"https://x.com/{username}/status/{tweet_id}",
        handle=str(username),
        display_name=author.get("name"),
        followers=user_metrics.get("followers_count") or 0,
        verified=bool(author.get("verified")),
        text=text,
        language=language if isinstance(language, str) and language not in ("und", "zxx") else None,
        created_at=created_at,
        reply_to=references.get("replied_to"),
        reshare_of=references.get("retweeted"),
        quote_of=references.get("quoted"),
        likes=metrics.get("like_count") or 0,
        reshares=metrics.get("retweet_count") or 0,
        replies=metrics.get("reply_count") or 0,
        quotes=metrics.get("quote_count") or 0,
        views=metrics.get("impression_count"),
    )
