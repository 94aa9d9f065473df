"""The push endpoint (`vigie ingest serve`): posts from platforms Vigie has no connector for.

`POST /v1/posts` takes one post (a JSON object in the post schema), a JSON array of posts,
or `{"posts": [...]}`. Authentication, either:
- `Authorization: Bearer <VIGIE_INGEST_TOKEN>` (the scheme in any case, RFC 9110), or
- `X-Vigie-Timestamp: <unix seconds>` and `X-Vigie-Signature: sha256=<hex>` where the hex
  is HMAC-SHA256(VIGIE_INGEST_HMAC_SECRET, "<timestamp>." + body); timestamps more than
  five minutes away are refused, so a captured request cannot be replayed later.

Answers: 200 `{"accepted": n, "keys": [...]}` only once Kafka acknowledged every record;
400 with every problem of every item (`{"errors": [{"index", "field", "message"}]}`),
and then nothing of the batch is sent, so the sender can fix and resend it whole;
401 without credentials, 403 with wrong ones, 413 over the size limit, 503 when Kafka did
not acknowledge (retry later: the keys make a resend harmless).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from pipeline import metrics
from pipeline.limits import DEFAULT_MAX_POST_BYTES, DEFAULT_PUSH_BODY_BYTES
from pipeline.records import post_key
from pipeline.settings import (
    Secret,
    SettingError,
    env_float,
    env_int,
    env_max_record_bytes,
    env_secret,
    env_str,
)
from pipeline.sources.errors import DeliveryError
from pipeline.sources.sinks import PostSink

__all__ = ["PushServer", "PushSettings", "sign"]

log = logging.getLogger("vigie.sources.push")
SOURCE = "push"


@dataclass(frozen=True)
class PushSettings:
    host: str = "127.0.0.1"
    port: int = 8787
    token: Secret = Secret("")
    hmac_secret: Secret = Secret("")
    max_bytes: int = DEFAULT_PUSH_BODY_BYTES  # a request body (a batch of posts)
    max_batch: int = 1000
    ack_timeout: float = 30.0
    max_skew_seconds: float = 300.0
    max_record_bytes: int = DEFAULT_MAX_POST_BYTES  # one post: the validate stage's limit

    @classmethod
    def from_env(cls) -> PushSettings:
        max_record_bytes = env_max_record_bytes()
        max_bytes = env_int("VIGIE_INGEST_MAX_BYTES", cls.max_bytes, minimum=1024)
        if max_bytes < max_record_bytes:
            raise SettingError(
                f"VIGIE_INGEST_MAX_BYTES: at least VIGIE_MAX_RECORD_BYTES ({max_record_bytes})"
                f" so that one post of the accepted size can be pushed, got {max_bytes}"
            )
        return cls(
            host=env_str("VIGIE_INGEST_HOST", cls.host),
            port=env_int("VIGIE_INGEST_PORT", cls.port, minimum=0),
            token=env_secret("VIGIE_INGEST_TOKEN"),
            hmac_secret=env_secret("VIGIE_INGEST_HMAC_SECRET"),
            max_bytes=max_bytes,
            max_batch=env_int("VIGIE_INGEST_MAX_BATCH", cls.max_batch, minimum=1),
            ack_timeout=env_float("VIGIE_INGEST_ACK_TIMEOUT", cls.ack_timeout, minimum=1.0),
            max_record_bytes=max_record_bytes,
        )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Vigie-Signature` value a sender computes."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _is_utf8(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


class PushServer:
    """An aiohttp application in front of a `PostSink`."""

    def __init__(self, settings: PushSettings, sink: PostSink) -> None:
        if not settings.token and not settings.hmac_secret:
            raise SettingError(
                "vigie ingest serve: set VIGIE_INGEST_TOKEN or VIGIE_INGEST_HMAC_SECRET;"
                " an open endpoint would let anyone write to posts.raw"
            )
        self.settings = settings
        self.sink = sink
        self.app = web.Application(client_max_size=settings.max_bytes)
        self.app.router.add_post("/v1/posts", self.receive)
        self.app.router.add_get("/healthz", self.health)
        self._runner: web.AppRunner | None = None
        self.port = settings.port

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        for name in ("Authorization", "X-Vigie-Signature", "X-Vigie-Timestamp"):
            # aiohttp keeps bytes that are not UTF-8 as surrogates; comparing them with
            # a secret would raise, so such a header is refused here as malformed.
            if not _is_utf8(request.headers.get(name, "")):
                return _error(400, f"{name} header is not valid UTF-8")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        signature = request.headers.get("X-Vigie-Signature")
        if scheme.lower() == "bearer" and self.settings.token:
            offered = credentials.strip().encode()
            if hmac.compare_digest(offered, self.settings.token.reveal().encode()):
                return None
            return _error(403, "invalid token")
        if signature is not None and self.settings.hmac_secret:
            timestamp = request.headers.get("X-Vigie-Timestamp", "")
            try:
                skew = abs(time.time() - float(timestamp))
            except ValueError:
                return _error(401, "X-Vigie-Timestamp is required with X-Vigie-Signature")
            # `nan` compares false with everything: it would pass the window below.
            if not math.isfinite(skew) or skew > self.settings.max_skew_seconds:
                return _error(403, "X-Vigie-Timestamp is too far from the server's clock")
            expected = sign(self.settings.hmac_secret.reveal(), timestamp, body)
            if hmac.compare_digest(signature.strip().encode(), expected.encode()):
                return None
            return _error(403, "invalid signature")
        schemes = []
        if self.settings.token:
            schemes.append("Bearer")
        if self.settings.hmac_secret:
            schemes.append("X-Vigie-Signature")
        return web.json_response(
            {"error": f"authentication required ({' or '.join(schemes)})"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="vigie"'} if self.settings.token else {},
        )

    async def receive(self, request: web.Request) -> web.Response:
        length = request.content_length
        if length is not None and length > self.settings.max_bytes:
            return _error(413, f"body larger than {self.settings.max_bytes} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"body larger than {self.settings.max_bytes} bytes")
        refused = self._authenticate(request, body)
        if refused is not None:
            return refused
        try:
            # The validate stage's parser: same numbers, same nesting limit (1024), and
            # invalid UTF-8 or deep nesting are a 400 like any other bad JSON.
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return self._invalid([{"index": None, "field": "$", "message": f"not JSON: {exc}"}], 0)
        if isinstance(document, dict) and "posts" in document:
            items = document["posts"]
            if not isinstance(items, list):
                return self._invalid(
                    [{"index": None, "field": "posts", "message": "must be a list"}], 0
                )
        elif isinstance(document, list):
            items = document
        else:
            items = [document]
        if not items:
            return self._invalid([{"index": None, "field": "$", "message": "no post"}], 0)
        if len(items) > self.settings.max_batch:
            return _error(413, f"more than {self.settings.max_batch} posts in one request")

        from pipeline.schema import validate_post

        errors: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            _, problems = validate_post(item)
            errors.extend(
                {"index": index, "field": p.field, "message": p.message} for p in problems
            )
            try:
                # The bytes the producer will write: what cannot be encoded (an integer
                # over 64 bits, nesting over orjson's limit) is refused now, not a 500.
                size = len(orjson.dumps(item))
            except orjson.JSONEncodeError as exc:
                errors.append({"index": index, "field": "$", "message": f"cannot encode: {exc}"})
                continue
            if size > self.settings.max_record_bytes:
                errors.append(
                    {
                        "index": index,
                        "field": "$",
                        "message": f"record of {size} bytes, over {self.settings.max_record_bytes}",
                    }
                )
        if errors:
            return self._invalid(errors, len(items))
        try:
            keys = await asyncio.wait_for(
                asyncio.to_thread(self._deliver, items), self.settings.ack_timeout
            )
        except (DeliveryError, TimeoutError) as exc:
            log.error("push: Kafka did not acknowledge %d post(s): %s", len(items), exc)
            return _error(503, "Kafka did not acknowledge the posts; retry later")
        metrics.SOURCE_ITEMS.labels(source=SOURCE, outcome="produced").inc(len(keys))
        return web.json_response({"accepted": len(keys), "keys": keys})

    def _invalid(self, errors: list[dict[str, Any]], count: int) -> web.Response:
        bad = len({e["index"] for e in errors}) if count else 1
        metrics.SOURCE_ITEMS.labels(source=SOURCE, outcome="invalid").inc(bad)
        log.warning("push: refused a request: %s", errors[:5])
        return web.json_response({"accepted": 0, "errors": errors}, status=400)

    def _deliver(self, items: list[dict[str, Any]]) -> list[str]:
        # The original objects go to posts.raw: the validate stage normalises them and
        # detects their language, as for every other source.
        deliveries = [self.sink.send(item) for item in items]
        for delivery in deliveries:
            delivery.wait(self.settings.ack_timeout)
        return [post_key(item) for item in items]

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
