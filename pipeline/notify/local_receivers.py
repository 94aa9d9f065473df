"""Local receivers for the demo: an SMTP sink and a webhook endpoint that print alerts.

`vigie alert sink` runs both on 127.0.0.1 so that `make demo` ends with the alerts
visible without any outside service: each email and each webhook call becomes one
printed line (and optionally one JSON line in a file). The webhook's HMAC signature is
checked with the same secret the worker signs with.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from pipeline.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

__all__ = ["LocalReceivers"]


class LocalReceivers:
    def __init__(
        self,
        smtp_port: int = 8025,
        webhook_port: int = 8765,
        webhook_secret: str = "",
        out: Path | None = None,
        echo: Callable[[str], None] = print,
        host: str = "127.0.0.1",
    ) -> None:
        self.smtp_port, self.webhook_port, self.host = smtp_port, webhook_port, host
        self.webhook_secret = webhook_secret
        self.out = out
        self.echo = echo
        self.received: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._smtp: Any = None

    def _record(self, entry: dict[str, Any], line: str) -> None:
        self.received.append(entry)
        self.echo(line)
        if self.out is not None:
            with self.out.open("ab") as file:
                file.write(orjson.dumps(entry) + b"\n")

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        signed = (
            verify_signature(
                self.webhook_secret,
                request.headers.get(TIMESTAMP_HEADER, ""),
                body,
                request.headers.get(SIGNATURE_HEADER, ""),
                now=time.time(),
            )
            if self.webhook_secret
            else None
        )
        if signed is False:
            self.echo("[webhook] REJECTED: bad or missing signature")
            return web.Response(status=401, text="bad signature")
        try:
            alert = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="not JSON")
        mark = "signed" if signed else "unsigned"
        self._record(
            {"via": "webhook", "signed": bool(signed), "alert": alert},
            f"[webhook {mark}] {alert.get('title')} — {alert.get('summary')}"
            f" ({alert.get('notification_key')})",
        )
        return web.Response(text="ok")

    async def start(self) -> None:
        from aiosmtpd.controller import Controller  # a test/demo extra, loaded on use

        sinks = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                mail = message_from_bytes(envelope.content, policy=policy.default)
                sinks._record(
                    {
                        "via": "email",
                        "to": list(envelope.rcpt_tos),
                        "subject": mail["Subject"],
                        "key": mail["X-Vigie-Notification-Key"],
                    },
                    f"[email to {', '.join(envelope.rcpt_tos)}] {mail['Subject']}",
                )
                return "250 OK"

        self._smtp = Controller(Handler(), hostname=self.host, port=self.smtp_port)
        self._smtp.start()
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.webhook_port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._smtp is not None:
            self._smtp.stop()

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()
