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


async def raw_call(server: PushServer, head: bytes, body: bytes) -> tuple[int, Any]:
    """One HTTP/1.1 request written byte for byte: header values no client library would
    send (invalid UTF-8), as a hostile sender can."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /v1/posts HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\n"
        + head
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    try:
        return int(status_line.split()[1]), json.loads(payload)
    except ValueError:  # aiohttp's own "500 Internal Server Error" page is text
        return int(status_line.split()[1]), payload.decode(errors="replace")


def test_hostile_requests_get_a_4xx_never_a_500() -> None:
    async def scenario() -> None:
        sink = MemorySink()
        server = PushServer(
            PushSettings(port=0, token=Secret(TOKEN), hmac_secret=Secret(HMAC_SECRET)), sink
        )
        await server.start()
        body = json.dumps(post(1)).encode()
        now = str(int(time.time())).encode()
        try:
            status, answer = await raw_call(server, b"Authorization: Bearer \xff\xfe\r\n", body)
            assert status == 400 and "Authorization" in answer["error"]
            head = b"X-Vigie-Timestamp: " + now + b"\r\nX-Vigie-Signature: sha256=\xc3\x28\r\n"
            status, answer = await raw_call(server, head, body)
            assert status == 400 and "X-Vigie-Signature" in answer["error"]
            # 100,000 levels of nesting: refused as bad JSON, not a crash of the parser.
            deep = b"[" * 100_000 + b"]" * 100_000
            status, answer = await call(server, deep, bearer())
            assert status == 400 and answer["errors"][0]["field"] == "$"
            # Valid JSON with a count no encoder can write (10**30 followers).
            huge = json.dumps(post(2, author={"handle": "fan", "followers": 10**30})).encode()
            status, answer = await call(server, huge, bearer())
            assert status == 400 and answer["errors"][0]["field"] == "author.followers"
            # Extra fields nested past what the producer's encoder accepts.
            nested: Any = 1
            for _ in range(300):
                nested = [nested]
            status, answer = await call(
                server, json.dumps(post(3, extra=nested)).encode(), bearer()
            )
            assert status == 400 and "cannot encode" in answer["errors"][0]["message"]
        finally:
            await server.stop()
        assert sink.posts == []

    asyncio.run(scenario())


def test_a_signature_with_timestamp_nan_is_refused_as_a_replay() -> None:
    async def scenario() -> None:
        sink = MemorySink()
        server = await serve(sink)
        body = json.dumps(post(5)).encode()
        try:
            for stamp in ("nan", "NaN", "inf", "-inf"):
                headers = {
                    "X-Vigie-Timestamp": stamp,
                    "X-Vigie-Signature": sign(HMAC_SECRET, stamp, body),
                }
                status, answer = await call(server, body, headers)
                assert status == 403 and "clock" in answer["error"], stamp
        finally:
            await server.stop()
        assert sink.posts == []

    asyncio.run(scenario())


def test_the_bearer_scheme_is_case_insensitive() -> None:
    async def scenario() -> None:
        sink = MemorySink()
        server = await serve(sink)
        try:
            for scheme in ("bearer", "BEARER", "Bearer"):
                headers = {"Authorization": f"{scheme} {TOKEN}"}
                body = json.dumps(post(len(sink.posts) + 10)).encode()
                status, _ = await call(server, body, headers)
                assert status == 200, scheme
            status, _ = await call(server, body, {"Authorization": "bearer wrong"})
            assert status == 403
        finally:
            await server.stop()
        assert len(sink.posts) == 3

    asyncio.run(scenario())
