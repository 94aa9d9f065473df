"""Standard Webhooks signatures, checked by real HTTP receivers on 127.0.0.1 that verify
with the `standardwebhooks` library (the spec's reference verifier, not Vigie's code),
including a secret rotation where each receiver holds only the old or only the new key."""

from __future__ import annotations

import asyncio
import base64
import os
import threading

import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from pipeline.notify.config import build_receivers
from pipeline.notify.dispatch import Dispatcher, MemoryAlertSink
from pipeline.notify.settings import AlertSettings
from pipeline.watchlist import parse_watchlist
from tests.integration.notify_servers import free_port
from tests.integration.test_alerting_receivers import message

pytestmark = pytest.mark.integration

FAST = AlertSettings(timeout_s=2, max_attempts=1, backoff_s=0.05)


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


class VerifyingReceiver:
    """An HTTP endpoint that accepts (204) only what `standardwebhooks` verifies (else 401)."""

    def __init__(self, secret: str) -> None:
        self.verifier = Webhook(secret)
        self.accepted: list[dict] = []
        self.refused: list[str] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = self.verifier.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            self.refused.append(str(exc))
            return web.Response(status=401, text="bad signature")
        self.accepted.append({"payload": payload, "id": request.headers["webhook-id"]})
        return web.Response(status=204)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> VerifyingReceiver:
        self._thread.start()

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def receivers_from_watchlist(urls: dict[str, str], env: dict[str, str]):
    lines = [f'  {name}: {{type: webhook, url: "{url}", signature: standard, '
             f"secret_env: HOOK_SECRETS}}" for name, url in urls.items()]
    text = ("version: 1\nreceivers:\n" + "\n".join(lines) + "\nbrands:\n  - id: acme\n"
            "    name: ACME\n    owners:\n      - {name: Ops, receivers: [" + ", ".join(urls)
            + "]}\n")
    return build_receivers(parse_watchlist(text, "watchlist.yaml").receivers, FAST, env)


def deliver(receivers, names):
    async def run():
        async with Dispatcher(receivers, FAST, MemoryAlertSink()) as dispatcher:
            return await dispatcher.deliver_many(
                [(message(receiver=name), name) for name in names])

    return asyncio.run(run())


def test_standard_signatures_verify_across_a_secret_rotation():
    old, new, unrelated = new_secret(), new_secret(), new_secret()
    with VerifyingReceiver(old) as on_old, VerifyingReceiver(new) as on_new, \
            VerifyingReceiver(unrelated) as stranger:
        receivers = receivers_from_watchlist(
            {"old-side": on_old.url(), "new-side": on_new.url(), "stranger": stranger.url()},
            {"HOOK_SECRETS": f"{old} {new}"})  # rotation: both secrets sign
        results = deliver(receivers, ["old-side", "new-side", "stranger"])
    outcome = {result.receiver: result.outcome for result in results}
    assert outcome == {"old-side": "sent", "new-side": "sent", "stranger": "failed"}
    (accepted,) = on_old.accepted
    assert accepted["payload"]["incident_id"] == "acme-20261128T0212Z"
    assert accepted["id"] == "acme-20261128T0212Z:opened:old-side"  # the notification key
    assert len(on_new.accepted) == 1
    assert stranger.refused == ["No matching signature found"]


def test_a_standard_secret_that_is_not_whsec_base64_is_refused_by_the_config():
    with pytest.raises(ValueError) as caught:
        receivers_from_watchlist({"r": "http://127.0.0.1:9/hook"},
                                 {"HOOK_SECRETS": "plain-password"})
    assert "receivers.r.secret_env: signature standard: secret #1 must start with whsec_" \
        in str(caught.value)
    assert "plain-password" not in str(caught.value)
