"""The push endpoint over real HTTP on 127.0.0.1: auth, validation, size limits, acks."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from pipeline.settings import Secret, SettingError
from pipeline.sources.base import DeliveryError
from pipeline.sources.push import PushServer, PushSettings, sign
from pipeline.sources.sinks import MemorySink

TOKEN = "push-token-9d2c"
HMAC_SECRET = "hmac-secret-51ab"


def post(n: int, **changes: Any) -> dict[str, Any]:
    base = {
        "schema_version": 1,
        "platform": "instagram",
        "id": f"C{n:05d}",
        "url": f"https://www.instagram.com/p/C{n:05d}/",
        "author": {"handle": "fan", "display_name": "Fan", "followers": 320, "verified": False},
        "text": f"ACME post number {n}",
        "created_at": "2026-11-28T02:12:41+00:00",
        "engagement": {"likes": 3},
    }
    base.update(changes)
    return base


class RefusingSink(MemorySink):
    """A sink whose broker never acknowledges: what the endpoint sees when Kafka is down."""

    def send(self, post: dict[str, Any]) -> Any:
        class Never:
            def wait(self, timeout: float | None = None) -> None:
                raise DeliveryError("NotEnoughReplicas")

        return Never()


async def serve(sink: MemorySink, **options: Any) -> PushServer:
    settings = PushSettings(
        port=0, token=Secret(TOKEN), hmac_secret=Secret(HMAC_SECRET), max_bytes=4096, **options
    )
    server = PushServer(settings, sink)
    await server.start()
    return server


async def call(server: PushServer, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"http://127.0.0.1:{server.port}/v1/posts", data=body, headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def test_single_post_batch_and_posts_object_are_accepted() -> None:
    async def scenario() -> None:
        sink = MemorySink()
        server = await serve(sink)
        try:
            status, answer = await call(server, json.dumps(post(1)).encode(), bearer())
            assert (status, answer) == (200, {"accepted": 1, "keys": ["instagram:C00001"]})
            status, answer = await call(server, json.dumps([post(2), post(3)]).encode(), bearer())
            assert status == 200 and answer["accepted"] == 2
            body = json.dumps({"posts": [post(4, platform="x", id="186")]}).encode()
            status, answer = await call(server, body, bearer())
            assert answer["keys"] == ["twitter:186"]
        finally:
            await server.stop()
        assert [p["id"] for p in sink.posts] == ["C00001", "C00002", "C00003", "186"]

    asyncio.run(scenario())


def test_every_error_of_every_item_and_nothing_sent() -> None:
    async def scenario() -> None:
        sink = MemorySink()
        server = await serve(sink)
        try:
            batch = [
                post(1),
                post(2, text="", created_at="yesterday"),
                post(3, author={"handle": "x", "followers": -1}),
            ]
            status, answer = await call(server, json.dumps(batch).encode(), bearer())
            assert status == 400 and answer["accepted"] == 0
            assert {(e["index"], e["field"]) for e in answer["errors"]} == {
                (1, "text"),
                (1, "created_at"),
                (2, "author.followers"),
            }
            status, answer = await call(server, b"{not json", bearer())
            assert status == 400 and answer["errors"][0]["message"].startswith("not JSON")
        finally:
            await server.stop()
        assert sink.posts == []

    asyncio.run(scenario())


def test_authentication_by_token_or_signature() -> None:
    async def scenario() -> None:
        sink = MemorySink()
        server = await serve(sink)
        body = json.dumps(post(7)).encode()
        try:
            status, answer = await call(server, body, {"Content-Type": "application/json"})
            assert status == 401 and "Bearer" in answer["error"]
            status, _ = await call(server, body, bearer("wrong"))
            assert status == 403
            now = str(int(time.time()))
            signed = {"X-Vigie-Timestamp": now, "X-Vigie-Signature": sign(HMAC_SECRET, now, body)}
            status, answer = await call(server, body, signed)
            assert status == 200 and answer["keys"] == ["instagram:C00007"]
            tampered = body.replace(b"number 7", b"number 8")
            status, _ = await call(server, tampered, signed)
            assert status == 403
            old = str(int(time.time()) - 3600)
            replayed = {"X-Vigie-Timestamp": old, "X-Vigie-Signature": sign(HMAC_SECRET, old, body)}
            status, answer = await call(server, body, replayed)
            assert status == 403 and "clock" in answer["error"]
        finally:
            await server.stop()
        assert len(sink.posts) == 1

    asyncio.run(scenario())


def test_oversized_body_and_batch_are_refused_with_413() -> None:
    async def scenario() -> None:
        sink = MemorySink()
        server = await serve(sink, max_batch=2, max_record_bytes=1200)
        try:
            huge = json.dumps(post(1, text="A" * 5000)).encode()
            status, _ = await call(server, huge, bearer())
            assert status == 413
            status, _ = await call(
                server, json.dumps([post(1), post(2), post(3)]).encode(), bearer()
            )
            assert status == 413
            # Under the body limit, but over the validate stage's record limit.
            body = json.dumps([post(1, text="B" * 1500)]).encode()
            status, answer = await call(server, body, bearer())
            assert status == 400 and answer["errors"][0]["message"].startswith("record of ")
        finally:
            await server.stop()
        assert sink.posts == []

    asyncio.run(scenario())


def test_answers_503_when_kafka_does_not_acknowledge() -> None:
    async def scenario() -> None:
        server = await serve(RefusingSink())
        try:
            status, answer = await call(server, json.dumps(post(1)).encode(), bearer())
        finally:
            await server.stop()
        assert status == 503 and "retry" in answer["error"]

    asyncio.run(scenario())


def test_refuses_to_start_without_any_credential() -> None:
    with pytest.raises(SettingError, match="VIGIE_INGEST_TOKEN"):
        PushServer(PushSettings(port=0), MemorySink())
