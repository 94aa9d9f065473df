"""`vigie config check`: every configuration problem at once, before anything runs."""

from __future__ import annotations

import json
import sys

import click

from pipeline.cli import exits
from pipeline.config_check import check_configuration


@click.group(name="config")
def command() -> None:
    """Check Vigie's configuration: settings, watchlist, receivers, model."""


@command.command()
@click.option("--json", "as_json", is_flag=True,
              help='One JSON object: {"ok", "errors", "warnings", "checked"}.')
def check(as_json: bool) -> None:
    """Check every VIGIE_* setting, the watchlist (VIGIE_WATCHLIST), every receiver
    (secrets read, nothing sent) and the sentiment model folder; report every problem
    with its variable or file:line:column. Exit 0 when usable, 2 when not."""
    report = check_configuration()
    if as_json:
        click.echo(json.dumps({"ok": report.ok, "errors": report.errors,
                               "warnings": report.warnings, "checked": report.checked}))
    else:
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)
        summary = "; ".join(report.checked)
        if report.ok:
            click.echo(f"configuration OK ({summary})")
        else:
            click.echo(f"{len(report.errors)} error(s) ({summary})", err=True)
    sys.exit(exits.OK if report.ok else exits.CONFIG_ERROR)
