"""Reddit: new posts and comments by polling the OAuth API within its published limits.

Wire format (reddit.com/dev/api, github.com/reddit-archive/reddit/wiki/API):
- token: `POST https://www.reddit.com/api/v1/access_token` with HTTP Basic auth
  (client id, secret) and `grant_type=client_credentials` -> `{"access_token",
  "token_type": "bearer", "expires_in"}`;
- listings: `GET https://oauth.reddit.com/r/<a+b+c>/new`, `/r/<subs>/comments`, `/search`
  (`q`, `sort=new`) with `limit=100` -> `{"kind": "Listing", "data": {"children":
  [{"kind": "t3"|"t1", "data": {...}}]}}`, newest first;
- limits: `X-Ratelimit-Used`, `X-Ratelimit-Remaining`, `X-Ratelimit-Reset` (seconds to the
  end of the period); a unique, descriptive User-Agent is required.

Cursor: per listing, the newest `created_utc` delivered; each poll keeps the children at
or after it (the runner's recent keys drop the ones already sent at the same second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from pipeline.settings import Secret, SettingError, env_bool, env_float, env_secret, env_str
from pipeline.sources.backoff import remaining_requests, retry_after_seconds
from pipeline.sources.connector import Connector
from pipeline.sources.errors import MALFORMED, FatalSourceError, RateLimited, TransientSourceError
from pipeline.sources.items import SourceItem
from pipeline.sources.text import iso_from_epoch, new_post

__all__ = ["RedditConnector", "RedditSettings", "post_from_child"]


@dataclass(frozen=True)
class RedditSettings:
    client_id: Secret = Secret("")
    client_secret: Secret = Secret("")
    subreddits: tuple[str, ...] = ()
    search: bool = True
    auth_url: str = "https://www.reddit.com"
    api_url: str = "https://oauth.reddit.com"
    user_agent: str = "server:vigie:0.1.0 (brand monitoring)"
    poll_seconds: float = 60.0
    min_request_interval: float = 1.0  # 60 requests a minute at most, the published limit

    @classmethod
    def from_env(cls) -> RedditSettings:
        subs = tuple(
            s.strip().removeprefix("r/")
            for s in env_str("VIGIE_REDDIT_SUBREDDITS", "").split(",")
            if s.strip()
        )
        return cls(
            client_id=env_secret("VIGIE_REDDIT_CLIENT_ID"),
            client_secret=env_secret("VIGIE_REDDIT_CLIENT_SECRET"),
            subreddits=subs,
            search=env_bool("VIGIE_REDDIT_SEARCH", cls.search),
            auth_url=env_str("VIGIE_REDDIT_AUTH_URL", cls.auth_url).rstrip("/"),
            api_url=env_str("VIGIE_REDDIT_API_URL", cls.api_url).rstrip("/"),
            user_agent=env_str("VIGIE_REDDIT_USER_AGENT", cls.user_agent),
            poll_seconds=env_float("VIGIE_REDDIT_POLL_SECONDS", cls.poll_seconds, 1.0),
            min_request_interval=env_float(
                "VIGIE_REDDIT_MIN_REQUEST_INTERVAL", cls.min_request_interval, 0.0
            ),
        )


@dataclass(frozen=True)
class Listing:
    label: str
    path: str
    params: tuple[tuple[str, str], ...] = ()


class RedditConnector(Connector):
    name: ClassVar[str] = "reddit"

    def __init__(self, settings: RedditSettings, queries: list[str] | None = None) -> None:
        if not settings.client_id or not settings.client_secret:
            raise FatalSourceError(
                "reddit: VIGIE_REDDIT_CLIENT_ID and VIGIE_REDDIT_CLIENT_SECRET are required"
            )
        self.settings = settings
        self.listings: list[Listing] = []
        if settings.subreddits:
            subs = "+".join(settings.subreddits)
            self.listings.append(Listing(f"r/{subs}/new", f"/r/{subs}/new"))
            self.listings.append(Listing(f"r/{subs}/comments", f"/r/{subs}/comments"))
        if settings.search:
            for query in queries or []:
                self.listings.append(
                    Listing(f"search:{query}", "/search", (("q", query), ("sort", "new")))
                )
        if not self.listings:
            raise SettingError(
                "reddit: nothing to poll; set VIGIE_REDDIT_SUBREDDITS or keep VIGIE_REDDIT_SEARCH"
                " on with a watchlist"
            )
        self._token: str | None = None
        self._token_expires = 0.0
        self._last_request = 0.0
        self._paused_until = 0.0

    async def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        newest: dict[str, float] = dict(cursor.get("newest") or {})
        edge: dict[str, list[str]] = {k: list(v) for k, v in (cursor.get("edge") or {}).items()}
        timeout = aiohttp.ClientTimeout(total=60)
        headers = {"User-Agent": self.settings.user_agent}
        async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
            while True:
                for listing in self.listings:
                    async for item in self._poll(session, listing, newest, edge):
                        yield item
                if self.single_pass:
                    return
                await asyncio.sleep(self.settings.poll_seconds)

    async def _poll(
        self,
        session: aiohttp.ClientSession,
        listing: Listing,
        newest: dict[str, float],
        edge: dict[str, list[str]],
    ) -> AsyncIterator[SourceItem]:
        params = dict(listing.params) | {"limit": "100", "raw_json": "1"}
        body = await self._get(session, listing.path, params)
        children = (body.get("data") or {}).get("children") if isinstance(body, dict) else None
        if not isinstance(children, list):
            yield SourceItem.bad(f"{listing.label}: the answer is not a Listing", body)
            return
        since = newest.get(listing.label)
        # The fullnames already delivered at the `since` second (a second holds several).
        at_edge = set(edge.get(listing.label, ()))
        fresh: list[tuple[float, dict[str, Any]]] = []
        top = since or 0.0
        for child in children:
            created = _created(child)
            if created is None:
                yield SourceItem.bad(f"{listing.label}: child without created_utc", child)
                continue
            top = max(top, created)
            name = (child.get("data") or {}).get("name")
            if since is None:
                continue
            if created > since or (created == since and name not in at_edge):
                fresh.append((created, child))
        # On the first run `since` is None: remember where "now" is rather than replaying
        # the last 100 items of every listing.
        for created, child in sorted(fresh, key=lambda pair: pair[0]):
            name = str((child.get("data") or {}).get("name"))
            if created > (since or 0.0):
                since, at_edge = created, set()
            at_edge.add(name)
            state = {"newest": {listing.label: since}, "edge": {listing.label: sorted(at_edge)}}
            try:
                yield SourceItem.ok(post_from_child(child), state)
            except MALFORMED as exc:
                yield SourceItem.bad(f"{listing.label}: {exc}", child, state)
        if since is None or top > since:
            since, at_edge = (
                top,
                {str((c.get("data") or {}).get("name")) for c in children if _created(c) == top},
            )
            yield SourceItem.checkpoint(
                {"newest": {listing.label: since}, "edge": {listing.label: sorted(at_edge)}}
            )
        newest[listing.label] = since
        edge[listing.label] = sorted(at_edge)

    async def _get(self, session: aiohttp.ClientSession, path: str, params: dict[str, str]) -> Any:
        for _ in range(2):  # a second try after refreshing an expired token
            await self._pace()
            token = await self._access_token(session)
            url = self.settings.api_url + path
            async with session.get(
                url, params=params, headers={"Authorization": f"bearer {token}"}
            ) as response:
                self._note_limits(response.headers)
                if response.status == 401:
                    self._token = None
                    continue
                if response.status == 429:
                    raise RateLimited(f"{path}: HTTP 429", retry_after_seconds(response.headers))
                if response.status == 403:
                    raise FatalSourceError(f"reddit: {path} answered HTTP 403 (private or banned?)")
                if response.status >= 400:
                    raise TransientSourceError(f"{path}: HTTP {response.status}", "http")
                try:
                    return await response.json(content_type=None)
                except ValueError as exc:
                    raise TransientSourceError(f"{path}: invalid JSON ({exc})", "http") from None
        raise FatalSourceError("reddit: the API keeps refusing a fresh token (HTTP 401)")

    async def _access_token(self, session: aiohttp.ClientSession) -> str:
        if self._token and time.monotonic() < self._token_expires - 60:
            return self._token
        auth = aiohttp.BasicAuth(
            self.settings.client_id.reveal(), self.settings.client_secret.reveal()
        )
        url = f"{self.settings.auth_url}/api/v1/access_token"
        async with session.post(
            url, data={"grant_type": "client_credentials"}, auth=auth
        ) as response:
            if response.status in (400, 401, 403):
                raise FatalSourceError(
                    f"reddit: the token request was refused (HTTP {response.status}): check"
                    " VIGIE_REDDIT_CLIENT_ID and VIGIE_REDDIT_CLIENT_SECRET"
                )
            if response.status == 429:
                raise RateLimited("token: HTTP 429", retry_after_seconds(response.headers))
            if response.status >= 400:
                raise TransientSourceError(f"token: HTTP {response.status}", "http")
            body = await response.json(content_type=None)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise FatalSourceError("reddit: the token answer has no access_token")
        self._token = token
        self._token_expires = time.monotonic() + float(body.get("expires_in") or 3600)
        return token

    def _note_limits(self, headers: Mapping[str, str]) -> None:
        remaining = remaining_requests(headers)
        if remaining is not None and remaining < 1:
            wait = retry_after_seconds(headers) or 0.0
            self._paused_until = max(self._paused_until, time.monotonic() + wait)

    async def _pace(self) -> None:
        now = time.monotonic()
        wait = max(
            self._paused_until - now, self._last_request + self.settings.min_request_interval - now
        )
        if wait > 0:
            await asyncio.sleep(wait)
        self._last_request = time.monotonic()


def _created(child: Any) -> float | None:
    data = child.get("data") if isinstance(child, dict) else None
    value = data.get("created_utc") if isinstance(data, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def post_from_child(child: Mapping[str, Any]) -> dict[str, Any]:
    """A listing child (`t3` link or `t1` comment) as a Vigie post keyed by its fullname."""
    kind = child.get("kind")
    data = child.get("data")
    if kind not in ("t1", "t3") or not isinstance(data, dict):
        raise ValueError(f"unexpected child kind {kind!r}")
    fullname = data.get("name")
    if not isinstance(fullname, str) or not fullname.startswith(f"{kind}_"):
        raise ValueError("child has no fullname")
    if kind == "t3":
        title = data.get("title")
        if not isinstance(title, str):
            raise ValueError("link has no title")
        body = data.get("selftext") if isinstance(data.get("selftext"), str) else ""
        text = f"{title}\n\n{body}".strip()
        parent = data.get("crosspost_parent")
        reshare_of = f"reddit:{parent}" if isinstance(parent, str) and parent else None
        reply_to = None
        replies = data.get("num_comments") or 0
    else:
        body = data.get("body")
        if not isinstance(body, str):
            raise ValueError("comment has no body")
        text = body
        parent = data.get("parent_id")
        reply_to = f"reddit:{parent}" if isinstance(parent, str) and parent else None
        reshare_of = None
        replies = 0
    permalink = data.get("permalink")
    author = data.get("author") if isinstance(data.get("author"), str) else "[deleted]"
    score = data.get("score")
    return new_post(
        platform="reddit",
        post_id=fullname,
        url=f"https://www.reddit.com{permalink}" if isinstance(permalink, str) else None,
        handle=author,
        display_name=None,
        followers=0,  # Reddit listings do not carry follower counts
        verified=False,
        text=text,
        language=None,
        created_at=iso_from_epoch(float(data["created_utc"])),
        reply_to=reply_to,
        reshare_of=reshare_of,
        likes=score if isinstance(score, int) and score > 0 else 0,
        replies=replies if isinstance(replies, int) else 0,
    )
