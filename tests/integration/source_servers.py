"""Local servers that speak each platform's documented wire protocol, for the source tests.

Each one replays fixtures from tests/fixtures/sources/ (written from the public API
documentation) on 127.0.0.1 and can misbehave on cue: drop the connection, answer 429
with the platform's reset headers, send malformed items and duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sources"


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def fixture_lines(name: str) -> list[str]:
    return [line for line in fixture_text(name).splitlines() if line.strip()]


def fixture_json(name: str) -> Any:
    return json.loads(fixture_text(name))


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float = field(default_factory=time.monotonic)


class ThreadedServer:
    """Runs a LocalServer in a thread with its own event loop, for tests whose client is a
    subprocess (`vigie ingest ...`) rather than a coroutine of the test."""

    def __init__(self, server: LocalServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LocalServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class LocalServer:
    """An aiohttp application on 127.0.0.1 and a free port, in the running event loop."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.requests: list[Seen] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app.middlewares.append(self._record)

    @web.middleware
    async def _record(self, request: web.Request, handler: Callable[..., Any]) -> Any:
        self.requests.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers))
        )
        return await handler(request)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> LocalServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def hits(self, path: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.path == path]


# --------------------------------------------------------------------------- Bluesky


class JetstreamServer(LocalServer):
    """`GET /subscribe` WebSocket: one JSON event per text frame, replay from `cursor`.

    - `drops`: for connection n, close after that many frames (then the client resumes);
    - `refuse_first`: answer the first handshake with this HTTP status;
    - `extra_first`: frames sent first on the first connection only (malformed ones);
    - events with `time_us` >= cursor are replayed, so the event at the cursor itself comes
      again: a duplicate the runner must drop.
    """

    def __init__(
        self,
        events: list[str],
        drops: list[int] | None = None,
        refuse_first: int | None = None,
        extra_first: list[str] | None = None,
        pace: float = 0.0,
    ) -> None:
        super().__init__()
        self.events = list(events)
        self.pace = pace
        self.sent = 0  # frames sent, all connections together
        self.drops = list(drops or [])
        self.refuse_first = refuse_first
        self.extra_first = list(extra_first or [])
        self.connections = 0
        self.cursors: list[str | None] = []
        self.app.router.add_get("/subscribe", self.subscribe)

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_first is not None:
            status, self.refuse_first = self.refuse_first, None
            return web.Response(status=status, headers={"Retry-After": "0"})
        self.connections += 1
        cursor = request.query.get("cursor")
        self.cursors.append(cursor)
        assert request.query.getall("wantedCollections") == ["app.bsky.feed.post"]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        limit = self.drops.pop(0) if self.drops else None
        frames = list(self.extra_first) if self.connections == 1 else []
        for line in self.events:
            if cursor is None or json.loads(line)["time_us"] >= int(cursor):
                frames.append(line)
        sent = 0
        for frame in frames:
            if limit is not None and sent >= limit:
                # An abrupt drop, as a restarting relay would do.
                request.transport.close()  # type: ignore[union-attr]
                return ws
            await ws.send_str(frame)
            sent += 1
            self.sent += 1
            if self.pace:
                await asyncio.sleep(self.pace)
        try:
            async for _ in ws:  # stay connected (idle) until the client leaves
                pass
        except asyncio.CancelledError:
            pass
        return ws


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for a condition")
        await asyncio.sleep(0.02)


async def run_until(
    runner: Any, sink: Any, count: int, timeout: float = 10.0, settle: float = 0.3
) -> Any:
    """Run `runner` until `sink` holds `count` posts (plus `settle` seconds for stragglers
    such as replayed duplicates), then stop it like SIGTERM would and return its report."""
    task = asyncio.create_task(runner.run())
    deadline = time.monotonic() + timeout
    while len(sink.posts) < count and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.02)
    if not task.done():
        await asyncio.sleep(settle)
        runner.stop("test")
    return await asyncio.wait_for(task, timeout=timeout)


# --------------------------------------------------------------------------- Mastodon


def _id_key(status: dict[str, Any]) -> int:
    return int(status["id"])


class MastodonServer(LocalServer):
    """Hashtag timeline (`GET /api/v1/timelines/tag/<tag>`, `min_id`/`since_id`/`limit`,
    newest first) and its stream (`GET /api/v1/streaming/hashtag?tag=`, server-sent events).

    - `timeline`: statuses the REST API knows (append to it to "post" while away);
    - `scripts`: per streaming connection, a list of SSE chunks (str) to write, then
      the connection is dropped if `drop` else kept open with heartbeats;
    - `streaming_status`: answer the streaming path with this status (404: not offered);
    - `rate_limit_first`: answer the first timeline request 429 with an ISO reset time.
    """

    def __init__(
        self,
        token: str,
        timeline: list[dict[str, Any]],
        scripts: list[list[str]] | None = None,
        drop: bool = True,
        streaming_status: int | None = None,
        rate_limit_first: bool = False,
    ) -> None:
        super().__init__()
        self.token = token
        self.timeline = list(timeline)
        self.scripts = [list(s) for s in scripts or []]
        self.drop = drop
        self.streaming_status = streaming_status
        self.rate_limit_first = rate_limit_first
        self.stream_connections = 0
        self.app.router.add_get("/api/v1/timelines/tag/{tag}", self.tag_timeline)
        self.app.router.add_get("/api/v1/streaming/hashtag", self.stream)
        self.app.router.add_get("/api/v2/search", self.search)

    def _authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def _limits(self) -> dict[str, str]:
        reset = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 300)) + ".000Z"
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": "299",
            "X-RateLimit-Reset": reset,
        }

    async def tag_timeline(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "The access token is invalid"}, status=401)
        if self.rate_limit_first:
            self.rate_limit_first = False
            reset = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time())) + ".000Z"
            return web.json_response(
                {"error": "Too many requests"},
                status=429,
                headers={
                    "X-RateLimit-Limit": "300",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": reset,
                },
            )
        limit = min(int(request.query.get("limit", "20")), 40)
        ordered = sorted(self.timeline, key=_id_key)
        if "min_id" in request.query:  # the page right after min_id, returned newest first
            newer = [s for s in ordered if int(s["id"]) > int(request.query["min_id"])]
            page = list(reversed(newer[:limit]))
        else:
            since = int(request.query.get("since_id", "0"))
            page = [s for s in reversed(ordered) if int(s["id"]) > since][:limit]
        return web.json_response(page, headers=self._limits())

    async def search(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "The access token is invalid"}, status=401)
        assert request.query["type"] == "statuses"
        words = request.query["q"].lower()
        found = [s for s in self.timeline if words in s["content"].lower()]
        limit = min(int(request.query.get("limit", "20")), 40)
        ordered = sorted(found, key=_id_key)
        if "min_id" in request.query:
            ordered = [s for s in ordered if int(s["id"]) > int(request.query["min_id"])][:limit]
            page = list(reversed(ordered))
        else:
            page = list(reversed(ordered))[:limit]
        return web.json_response({"accounts": [], "statuses": page, "hashtags": []})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if self.streaming_status is not None:
            return web.json_response({"error": "Not found"}, status=self.streaming_status)
        if not self._authorised(request):
            return web.json_response({"error": "The access token is invalid"}, status=401)
        self.stream_connections += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b":)\n")
        script = self.scripts.pop(0) if self.scripts else []
        for chunk in script:
            await response.write(chunk.encode())
        if script and self.drop:
            await asyncio.sleep(0.1)  # let the client read what was sent, then cut
            request.transport.close()  # type: ignore[union-attr]
            return response
        try:
            while True:
                await asyncio.sleep(0.2)
                await response.write(b":thump\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


def sse(event: str, payload: Any) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"event: {event}\ndata: {data}\n\n"


# --------------------------------------------------------------------------- X


class XServer(LocalServer):
    """`/2/tweets/search/stream/rules` (GET, POST add/delete) and `/2/tweets/search/stream`
    (newline-delimited JSON, `\\r\\n` keep-alives), bearer-token auth.

    - `rules`: id -> {"id", "value", "tag"} on the "account";
    - `scripts`: per stream connection, lines to send (bytes sent as-is after `\\r\\n`),
      then drop the connection (`drop`) or stay open with keep-alives;
    - `rate_limit_first`: answer the first stream request 429 with `x-rate-limit-reset`.
    """

    def __init__(
        self,
        token: str,
        rules: list[dict[str, str]] | None = None,
        scripts: list[list[str]] | None = None,
        rate_limit_first: bool = False,
        keepalive: float = 0.1,
    ) -> None:
        super().__init__()
        self.token = token
        self.rules = {r["id"]: dict(r) for r in rules or []}
        self.scripts = [list(s) for s in scripts or []]
        self.rate_limit_first = rate_limit_first
        self.keepalive = keepalive
        self.stream_params: list[dict[str, str]] = []
        self._next_id = 1863200000000000000
        self.app.router.add_get("/2/tweets/search/stream/rules", self.get_rules)
        self.app.router.add_post("/2/tweets/search/stream/rules", self.post_rules)
        self.app.router.add_get("/2/tweets/search/stream", self.stream)

    def _unauthorised(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") == f"Bearer {self.token}":
            return None
        return web.json_response(
            {
                "title": "Unauthorized",
                "type": "about:blank",
                "status": 401,
                "detail": "Unauthorized",
            },
            status=401,
        )

    async def get_rules(self, request: web.Request) -> web.Response:
        if (refused := self._unauthorised(request)) is not None:
            return refused
        data = list(self.rules.values())
        body: dict[str, Any] = {
            "meta": {"sent": "2026-11-28T02:12:00.000Z", "result_count": len(data)}
        }
        if data:
            body["data"] = data
        return web.json_response(body)

    async def post_rules(self, request: web.Request) -> web.Response:
        if (refused := self._unauthorised(request)) is not None:
            return refused
        body = await request.json()
        if "delete" in body:
            ids = body["delete"]["ids"]
            for rule_id in ids:
                self.rules.pop(rule_id, None)
            return web.json_response(
                {
                    "meta": {
                        "sent": "2026-11-28T02:12:00.000Z",
                        "summary": {"deleted": len(ids), "not_deleted": 0},
                    }
                }
            )
        created = []
        errors = []
        for rule in body["add"]:
            if len(rule["value"]) > 512:
                errors.append(
                    {
                        "value": rule["value"],
                        "title": "RulesTooLong",
                        "type": "https://api.twitter.com/2/problems/invalid-rules",
                    }
                )
                continue
            self._next_id += 1
            entry = {"id": str(self._next_id), "value": rule["value"], "tag": rule.get("tag", "")}
            self.rules[entry["id"]] = entry
            created.append(entry)
        answer: dict[str, Any] = {
            "data": created,
            "meta": {
                "sent": "2026-11-28T02:12:00.000Z",
                "summary": {
                    "created": len(created),
                    "not_created": len(errors),
                    "valid": len(created),
                    "invalid": len(errors),
                },
            },
        }
        if errors:
            answer["errors"] = errors
        return web.json_response(answer)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._unauthorised(request)) is not None:
            return refused
        self.stream_params.append(dict(request.query))
        if self.rate_limit_first:
            self.rate_limit_first = False
            return web.json_response(
                {"title": "ConnectionException", "detail": "Too many connections", "status": 429},
                status=429,
                headers={
                    "x-rate-limit-limit": "50",
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(int(time.time())),
                },
            )
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        script = self.scripts.pop(0) if self.scripts else []
        for line in script:
            await response.write(b"\r\n" + line.encode() + b"\r\n")
        if script:
            await asyncio.sleep(0.1)
            request.transport.close()  # type: ignore[union-attr]
            return response
        try:
            while True:
                await asyncio.sleep(self.keepalive)
                await response.write(b"\r\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


# --------------------------------------------------------------------------- Reddit


class RedditServer(LocalServer):
    """Both Reddit hosts in one: `POST /api/v1/access_token` (Basic auth, client
    credentials) and the OAuth listings `/r/<subs>/new`, `/r/<subs>/comments`, `/search`.

    - `links` / `comments`: the things Reddit knows (append to "post");
    - `rate_limit_first`: the first listing request gets 429 with `X-Ratelimit-Reset`;
    - `revoke_first_token`: the first token stops working (401) after one use;
    - `extra_children`: malformed children added to the first `new` listing.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        links: list[dict[str, Any]],
        comments: list[dict[str, Any]],
        rate_limit_first: bool = False,
        revoke_first_token: bool = False,
        extra_children: list[Any] | None = None,
    ) -> None:
        super().__init__()
        self.credentials = basic_auth(client_id, client_secret)
        self.links = list(links)
        self.comments = list(comments)
        self.rate_limit_first = rate_limit_first
        self.revoke_first_token = revoke_first_token
        self.extra_children = list(extra_children or [])
        self.tokens: list[str] = []
        self.revoked: set[str] = set()
        self.app.router.add_post("/api/v1/access_token", self.token)
        self.app.router.add_get("/r/{subs}/new", self.new)
        self.app.router.add_get("/r/{subs}/comments", self.comment_listing)
        self.app.router.add_get("/search", self.search)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if request.headers.get("Authorization") != self.credentials:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        token = f"token-{len(self.tokens) + 1}"
        self.tokens.append(token)
        return web.json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"}
        )

    def _check(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("bearer ")
        if token not in self.tokens or token in self.revoked:
            return web.json_response({"message": "Unauthorized", "error": 401}, status=401)
        if self.revoke_first_token and token == "token-1":
            self.revoked.add(token)  # works this once, refused afterwards
        if self.rate_limit_first:
            self.rate_limit_first = False
            return web.json_response(
                {"message": "Too Many Requests", "error": 429},
                status=429,
                headers={
                    "X-Ratelimit-Used": "100",
                    "X-Ratelimit-Remaining": "0.0",
                    "X-Ratelimit-Reset": "0",
                },
            )
        return None

    def _listing(self, children: list[Any], request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "25"))
        ordered = sorted(
            (c for c in children if isinstance(c, dict) and "created_utc" in c.get("data", {})),
            key=lambda c: -c["data"]["created_utc"],
        )[:limit]
        ordered += [
            c for c in children if not (isinstance(c, dict) and "created_utc" in c.get("data", {}))
        ]
        body = {
            "kind": "Listing",
            "data": {
                "after": None,
                "dist": len(ordered),
                "modhash": "",
                "before": None,
                "children": ordered,
            },
        }
        headers = {
            "X-Ratelimit-Used": "3",
            "X-Ratelimit-Remaining": "597.0",
            "X-Ratelimit-Reset": "420",
        }
        return web.json_response(body, headers=headers)

    def _in(self, request: web.Request, things: list[dict[str, Any]]) -> list[dict[str, Any]]:
        subs = set(request.match_info["subs"].split("+"))
        return [t for t in things if t["data"]["subreddit"] in subs]

    async def new(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        extra, self.extra_children = self.extra_children, []
        return self._listing(self._in(request, self.links) + extra, request)

    async def comment_listing(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        return self._listing(self._in(request, self.comments), request)

    async def search(self, request: web.Request) -> web.Response:
        if (refused := self._check(request)) is not None:
            return refused
        words = [w.strip('"').lower() for w in request.query["q"].split(" OR ")]
        found = [
            t
            for t in self.links
            if any(w in (t["data"]["title"] + " " + t["data"]["selftext"]).lower() for w in words)
        ]
        return self._listing(found, request)


# --------------------------------------------------------------------------- RSS / Atom


@dataclass
class Feed:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str = '"v1"'
    last_modified: str = "Sat, 28 Nov 2026 02:06:00 GMT"
    fail_first: int | None = None  # answer the first request with this status


class FeedServer(LocalServer):
    """Serves feeds at their paths with ETag and Last-Modified, answers 304 to a matching
    conditional request, and can fail a feed's first request (429 with Retry-After)."""

    def __init__(self, feeds: dict[str, Feed]) -> None:
        super().__init__()
        self.feeds = feeds
        self.app.router.add_get("/{path:.*}", self.serve)

    async def serve(self, request: web.Request) -> web.StreamResponse:
        feed = self.feeds.get(request.path)
        if feed is None:
            return web.Response(status=404, text="no such feed")
        if feed.fail_first is not None:
            status, feed.fail_first = feed.fail_first, None
            return web.Response(status=status, headers={"Retry-After": "0"})
        if request.headers.get("If-None-Match") == feed.etag or (
            "If-None-Match" not in request.headers
            and request.headers.get("If-Modified-Since") == feed.last_modified
        ):
            return web.Response(status=304, headers={"ETag": feed.etag})
        return web.Response(
            body=feed.body,
            headers={
                "Content-Type": feed.content_type,
                "ETag": feed.etag,
                "Last-Modified": feed.last_modified,
            },
        )
