"""`vigie alert test --brand B`: send a test message through the brand's receivers."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import click
import orjson

from pipeline.notify.config import build_receiver
from pipeline.notify.dispatch import DeliveryResult
from pipeline.notify.service import send_test_alert
from pipeline.notify.settings import AlertSettings
from pipeline.settings import SettingError, WorkerSettings
from pipeline.watchlist import WatchlistError, load_watchlist


@click.group(name="alert")
def command() -> None:
    """Alerting tools (the alert agent itself runs in `vigie worker`)."""


@command.command("test")
@click.option("--brand", required=True, help="Brand id from the watchlist.")
@click.option("--json", "as_json", is_flag=True, help="One JSON result per line.")
def test(brand: str, as_json: bool) -> None:
    """Send a test message through every receiver of BRAND's owners; exit 1 if any fails."""
    try:
        settings = AlertSettings.from_env()
        watchlist = load_watchlist(WorkerSettings.from_env().watchlist)
    except (WatchlistError, SettingError) as exc:
        click.echo(f"vigie alert: {exc}", err=True)
        sys.exit(2)
    if brand not in watchlist.brands:
        click.echo(f"vigie alert: unknown brand {brand!r} (watchlist {watchlist.path})", err=True)
        sys.exit(2)
    target = watchlist.brands[brand]
    names = list(dict.fromkeys(r for owner in target.owners for r in owner.receivers))
    receivers, results = {}, []
    for name in names:
        spec = watchlist.receivers[name]
        try:
            receivers[name] = build_receiver(spec, settings)
        except WatchlistError as exc:
            results.append(DeliveryResult("", name, spec.type, "failed", 0, None, str(exc)))
    if receivers:
        results += asyncio.run(
            send_test_alert(brand, target.name, list(receivers), receivers, settings)
        )
    if not names:
        click.echo(f"brand {brand!r} has no receivers")
    for result in sorted(results, key=lambda r: names.index(r.receiver)):
        if as_json:
            click.echo(
                orjson.dumps(
                    {
                        "receiver": result.receiver,
                        "type": result.receiver_type,
                        "outcome": result.outcome,
                        "attempts": result.attempts,
                        "status": result.status,
                        "error": result.error,
                    }
                ).decode()
            )
        else:
            detail = f"status {result.status}" if result.ok else result.error
            click.echo(
                f"{result.receiver} ({result.receiver_type}): {result.outcome.upper()}"
                f" after {result.attempts} attempt(s), {detail}"
            )
    sys.exit(0 if all(r.ok for r in results) else 1)


@command.command("sink")
@click.option("--smtp-port", default=8025, show_default=True, help="SMTP sink port.")
@click.option("--webhook-port", default=8765, show_default=True, help="Webhook port (/hook).")
@click.option(
    "--secret-env",
    default="VIGIE_DEMO_WEBHOOK_SECRET",
    show_default=True,
    help="Variable holding the webhook HMAC secret (unset: accept unsigned).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also append each received alert as a JSON line to this file.",
)
def sink(smtp_port: int, webhook_port: int, secret_env: str, out: Path | None) -> None:
    """Receive alerts locally (SMTP sink + webhook on 127.0.0.1) and print them; for demos."""
    from pipeline.notify.local_receivers import LocalReceivers

    sinks = LocalReceivers(
        smtp_port,
        webhook_port,
        os.environ.get(secret_env, ""),
        out,
        echo=lambda line: click.echo(line),
    )
    click.echo(
        f"listening: smtp 127.0.0.1:{smtp_port}, webhook "
        f"http://127.0.0.1:{webhook_port}/hook (Ctrl-C to stop)"
    )
    try:
        asyncio.run(sinks.run_forever())
    except KeyboardInterrupt:
        pass
