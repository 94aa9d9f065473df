"""The single `vigie` entry point; each command group lives in its own module.

The CLI sits above the rest: it is the one part of `pipeline/` that imports `agents/`
(`vigie worker` runs the Faust app, whose entry point is agents/worker.py). Every other
module of `pipeline/` stays below `agents/` (tests/unit/test_contracts.py).
"""

from __future__ import annotations

from typing import Any

import click

from pipeline.cli import exits

COMMAND_NAMES = (
    "config", "kafka", "ingest", "worker", "demo", "detect", "model", "sentiment", "alert",
    "silence",
)


def load_command(name: str) -> click.Command | None:
    """The command group `name`, imported only now (plain imports, one per command), so
    that `vigie kafka status` does not pay for loading the model stack or Faust."""
    match name:
        case "config":
            from pipeline.cli.config import command
        case "kafka":
            from pipeline.cli.kafka import command
        case "ingest":
            from pipeline.cli.ingest import command
        case "worker":
            from agents.worker import command
        case "demo":
            from pipeline.cli.demo import command
        case "detect":
            from pipeline.cli.detect import command
        case "model":
            from pipeline.cli.model import command
        case "sentiment":
            from pipeline.cli.sentiment import command
        case "alert":
            from pipeline.cli.alert import command
        case "silence":
            from pipeline.cli.silence import command
        case _:
            return None
    return command


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_NAMES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return load_command(name)

    def invoke(self, ctx: click.Context) -> Any:
        # One place turns a configuration error into its message and exit 2, whatever the
        # command: a bad VIGIE_* value or watchlist must not end in a traceback.
        from pipeline.settings import SettingError
        from pipeline.watchlist import WatchlistError

        try:
            return super().invoke(ctx)
        except (SettingError, WatchlistError) as exc:
            command = f"{ctx.command_path} {ctx.invoked_subcommand or ''}".strip()
            click.echo(f"{command}: configuration error:\n{exc}", err=True)
            ctx.exit(exits.CONFIG_ERROR)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vigie")
def main() -> None:
    """Vigie: real-time warning of negative waves about brands."""


if __name__ == "__main__":
    main()
