"""The single `vigie` entry point; each command group lives in its own module."""

from __future__ import annotations

import importlib
from typing import Any

import click

from pipeline.cli import exits

# One module per command group; each defines a click command or group named `command`.
# Imported lazily so that `vigie kafka status` does not pay for loading the model stack.
COMMAND_MODULES: dict[str, str] = {
    "config": "pipeline.cli.config",
    "kafka": "pipeline.cli.kafka",
    "ingest": "pipeline.cli.ingest",
    "worker": "agents.worker",  # the Faust app lives in agents/; loaded by name
    "demo": "pipeline.cli.demo",
    "detect": "pipeline.cli.detect",
    "model": "pipeline.cli.model",
    "sentiment": "pipeline.cli.sentiment",
    "alert": "pipeline.cli.alert",
    "silence": "pipeline.cli.silence",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMAND_MODULES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module_name = COMMAND_MODULES.get(name)
        if module_name is None:
            return None
        return importlib.import_module(module_name).command

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
