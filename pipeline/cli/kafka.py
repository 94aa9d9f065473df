"""`vigie kafka start|stop|status|reset`: the local single-node broker."""

from __future__ import annotations

import sys

import click

from pipeline.cli import exits
from pipeline.kafka_local import KafkaLocalError, LocalKafka

# `status` exit codes follow the LSB convention so that scripts can branch on them.
EXIT_NOT_RUNNING = exits.NOT_RUNNING


@click.group(name="kafka")
def command() -> None:
    """Run a local Kafka broker (KRaft, 127.0.0.1) from Maven Central jars."""


@command.command()
@click.option("--wait", "wait_s", default=90.0, show_default=True, help="Seconds to wait.")
def start(wait_s: float) -> None:
    """Start the broker (does nothing if it already runs) and wait until it answers."""
    broker = LocalKafka.from_env()
    try:
        pid, started = broker.start(wait_s=wait_s)
    except KafkaLocalError as exc:
        click.echo(f"vigie kafka start: {exc}", err=True)
        sys.exit(1)
    verb = "started" if started else "already running"
    click.echo(f"Kafka {verb} on {broker.bootstrap} (pid {pid}); log: {broker.log_file}")


@command.command()
def stop() -> None:
    """Stop the broker; not an error when none runs."""
    broker = LocalKafka.from_env()
    try:
        pid = broker.stop()
    except KafkaLocalError as exc:
        click.echo(f"vigie kafka stop: {exc}", err=True)
        sys.exit(1)
    click.echo("Kafka was not running" if pid is None else f"Kafka stopped (pid {pid})")


@command.command()
def reset() -> None:
    """Stop the broker and delete all its topics, records and cluster id (logs stay); the
    next start begins an empty cluster."""
    broker = LocalKafka.from_env()
    try:
        pid = broker.reset()
    except KafkaLocalError as exc:
        click.echo(f"vigie kafka reset: {exc}", err=True)
        sys.exit(1)
    stopped = "" if pid is None else f"stopped (pid {pid}), "
    click.echo(f"Kafka {stopped}data and cluster id removed from {broker.state_dir}; "
               f"the next start begins an empty cluster")


@command.command()
def status() -> None:
    """Say whether the broker runs and answers (exit 0), or not (exit 3)."""
    broker = LocalKafka.from_env()
    pid = broker.running_pid()
    if pid is None:
        click.echo(f"Kafka is not running (state folder {broker.state_dir})")
        sys.exit(EXIT_NOT_RUNNING)
    if broker.answers():
        click.echo(f"Kafka is running on {broker.bootstrap} (pid {pid}); log: {broker.log_file}")
        return
    click.echo(f"Kafka process {pid} runs but does not answer on {broker.bootstrap}; "
               f"log: {broker.log_file}")
    sys.exit(1)
