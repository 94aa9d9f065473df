"""Real servers on 127.0.0.1 standing in for Slack, webhook and PagerDuty endpoints (HTTP)
and for a mail relay (SMTP), for the alerting tests and the demo.

`HttpStandIn` is an aiohttp server in its own thread, so it serves sync and async tests
alike. It answers by a script of behaviours, then by its default:
    "ok"          200 (or `ok_status`)
    "429:<secs>"  429 Too Many Requests with Retry-After: <secs>
    "500"         500 (any 3-digit code works)
    "slow:<secs>" 200 after that many seconds
    "hang"        never answers (until release_hanging() or the server stops: then 503)
    "hold"        answers 200 once release_hanging() is called: a receiver that is slow
                  for as long as the test needs
Every request is recorded with its arrival time and the status it got.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = [
    "HttpStandIn",
    "SlackApiStandIn",
    "ReceivedRequest",
    "SmtpStandIn",
    "free_port",
    "self_signed_cert",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    arrived: float  # time.monotonic()
    status: int | None = None  # None while hanging / never answered

    def json(self) -> Any:
        return orjson.loads(self.body)


class HttpStandIn:
    def __init__(self, default: str = "ok", ok_status: int = 200, ok_body: str = "ok") -> None:
        self.default = default
        self.ok_status = ok_status
        self.ok_body = ok_body
        self.requests: list[ReceivedRequest] = []
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self.port = 0

    # -- control, from the test's thread
    def start(self) -> HttpStandIn:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def __enter__(self) -> HttpStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, *behaviours: str) -> None:
        """The next requests get these behaviours, in order; then the default."""
        with self._lock:
            self._script.extend(behaviours)

    def set_default(self, behaviour: str) -> None:
        with self._lock:
            self.default = behaviour

    def release_hanging(self) -> None:
        """Let waiting requests end: "hang" ones with 503, "hold" ones with success."""
        if self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def delivered(self) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if r.status is not None and 200 <= r.status < 300]

    def wait_for(self, count: int, timeout: float = 10.0, delivered: bool = True) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.delivered() if delivered else list(self.requests)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        got = self.delivered() if delivered else list(self.requests)
        raise AssertionError(f"expected {count} requests within {timeout}s, got {len(got)}")

    # -- the server, in its own loop
    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # No access log: the stand-in plays Slack's side, which may see its token.
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        assert self._release is not None and self._runner is not None
        self._release.set()
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = ReceivedRequest(request.path, dict(request.headers), body, time.monotonic())
        with self._lock:
            self.requests.append(received)
            behaviour = self._script.popleft() if self._script else self.default
        if behaviour in ("hang", "hold"):
            assert self._release is not None
            await self._release.wait()
            if behaviour == "hang":  # a receiver that never answered in time
                received.status = 503
                return web.Response(status=503, text="released")
            behaviour = "ok"  # a slow receiver that took it in the end
        if behaviour.startswith("slow:"):
            await asyncio.sleep(float(behaviour.partition(":")[2]))
            behaviour = "ok"
        if behaviour == "ok":
            received.status = self.ok_status
            return web.Response(status=self.ok_status, text=self.ok_body)
        if behaviour.startswith("429"):
            _, _, seconds = behaviour.partition(":")
            received.status = 429
            return web.Response(
                status=429, text="rate_limited", headers={"Retry-After": seconds or "1"}
            )
        received.status = int(behaviour)
        return web.Response(status=received.status, text="server trouble")


class SlackApiStandIn(HttpStandIn):
    """Slack's Web API as far as Vigie uses it: `chat.postMessage` (a new message, or a
    reply when `thread_ts` is given) and `chat.update`, with a bot token. Like Slack it
    answers HTTP 200 with {"ok": false, "error": ...} for a bad token, an unknown method
    or an unknown message. `messages` holds the channel as a reader would see it."""

    def __init__(self, token: str, channel_id: str = "C0VIGIE") -> None:
        super().__init__()
        self.token = token
        self.channel_id = channel_id
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.messages: dict[str, dict[str, Any]] = {}  # ts -> the message as it is now
        self.refuse_updates = False  # chat.update answers cant_update_message
        self.update_delay_s = 0.0  # chat.update answers this late (a slow Slack)
        self._next_ts = 1_700_000_000

    def delete(self, ts: str) -> None:
        """Someone deleted the message (and with it, its thread)."""
        with self._lock:
            self.messages = {k: m for k, m in self.messages.items()
                             if k != ts and m.get("thread_ts") != ts}

    def api_url(self) -> str:
        return self.url("/api/")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = ReceivedRequest(request.path, dict(request.headers), body, time.monotonic())
        with self._lock:
            self.requests.append(received)
            behaviour = self._script.popleft() if self._script else "ok"
        if behaviour != "ok":
            received.status = int(behaviour.partition(":")[0])
            headers = {"Retry-After": behaviour.partition(":")[2] or "1"}
            return web.json_response({"ok": False, "error": "ratelimited"},
                                     status=received.status, headers=headers)
        received.status = 200
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if request.content_type == "application/json":
            payload = orjson.loads(body)
        else:
            payload = dict(await request.post())
        method = request.path.rsplit("/", 1)[-1]
        if method == "chat.update" and self.update_delay_s:
            await asyncio.sleep(self.update_delay_s)
        with self._lock:
            self.calls.append((method, payload))
            if method == "chat.postMessage":
                self._next_ts += 1
                ts = f"{self._next_ts}.000100"
                thread = payload.get("thread_ts")
                if thread is not None and thread not in self.messages:
                    return web.json_response({"ok": False, "error": "thread_not_found"})
                self.messages[ts] = {**payload, "ts": ts, "edits": 0}
                return web.json_response({"ok": True, "channel": self.channel_id, "ts": ts,
                                          "message": {"text": payload.get("text")}})
            if method == "chat.update":
                ts = payload.get("ts")
                if self.refuse_updates:
                    return web.json_response({"ok": False, "error": "cant_update_message"})
                if payload.get("channel") != self.channel_id or ts not in self.messages:
                    return web.json_response({"ok": False, "error": "message_not_found"})
                edits = self.messages[ts]["edits"] + 1
                self.messages[ts] = {**self.messages[ts], **payload, "edits": edits}
                return web.json_response({"ok": True, "channel": self.channel_id, "ts": ts})
        return web.json_response({"ok": False, "error": "unknown_method"})

    def top_level(self) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages.values() if not m.get("thread_ts")]

    def thread(self, ts: str) -> list[dict[str, Any]]:
        with self._lock:
            return [m for m in self.messages.values() if m.get("thread_ts") == ts]


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl CLI (cert, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    authenticated_as: str | None
    over_tls: bool
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = message_from_bytes(self.data, policy=policy.default)  # type: ignore[assignment]


class _MailHandler:
    def __init__(self, owner: SmtpStandIn) -> None:
        self.owner = owner

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        user = session.auth_data.login.decode() if session.authenticated else None
        transport = getattr(server, "transport", None)
        over_tls = session.ssl is not None or (
            transport is not None and transport.get_extra_info("ssl_object") is not None
        )
        self.owner.mails.append(
            ReceivedMail(
                envelope.mail_from, list(envelope.rcpt_tos), envelope.content, user, over_tls
            )
        )
        return "250 OK"


class SmtpStandIn:
    """A real aiosmtpd server. security: none | starttls | tls; login when users given."""

    def __init__(
        self,
        security: str = "none",
        users: dict[str, str] | None = None,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        self.security = security
        self.users = users or {}
        self.mails: list[ReceivedMail] = []
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        context = None
        if security != "none":
            assert cert is not None, "TLS needs a certificate"
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        if security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif security == "tls":
            kwargs.update(ssl_context=context)
        if self.users:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # aiosmtpd only knows of TLS it started itself (STARTTLS); with
                # implicit TLS the whole connection is already encrypted.
                auth_require_tls=security == "starttls",
            )
        self._controller = Controller(
            _MailHandler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if self.users.get(user) == password:
                return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpStandIn:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.mails) < count:
            time.sleep(0.02)
        if len(self.mails) < count:
            raise AssertionError(f"expected {count} mails within {timeout}s, got {len(self.mails)}")
        return list(self.mails)
