"""`vigie worker`: run the Faust worker (all agents) until SIGTERM or Ctrl-C."""

from __future__ import annotations

import dataclasses
import logging
import sys

import click
import faust

from agents.app import create_app
from pipeline.kafka_link import aiokafka_answers, install_log_gate, kafka_link, probe_until_back
from pipeline.settings import KafkaSettings, SettingError, WorkerSettings
from pipeline.topics import ensure_topics


class VigieWorker(faust.Worker):
    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # mode leaves the root logger at DEBUG and filters in the handler, so every
        # aiokafka and Faust debug call still builds its log record: 15% of a busy
        # worker's time. Setting the level on the logger itself skips that work.
        logger.setLevel(level)
        # During a broker outage aiokafka logs each failed attempt of every fetcher,
        # coordinator and producer (8,000 lines/s were seen): the gate logs the outage
        # once, its end once, and counts the rest (vigie_kafka_* metrics).
        install_log_gate(kafka_link(), logger)


def watch_kafka_link(app: faust.App, kafka: KafkaSettings) -> None:
    """This worker's link to Kafka (`pipeline.kafka_link`): named, and probed while down,
    since a worker with nothing to fetch has no other way to notice Kafka is back."""
    link = kafka_link("worker", kafka.bootstrap_servers)

    @app.task
    async def kafka_link_probe() -> None:
        await probe_until_back(link, lambda: aiokafka_answers(kafka))


@click.command(name="worker")
@click.option("--web-port", type=int, help="Override VIGIE_WEB_PORT (/metrics, /ready).")
def command(web_port: int | None) -> None:
    """Start a Faust worker: validate, score, detect and alert agents, one consumer group."""
    try:
        settings = WorkerSettings.from_env()
        if web_port is not None:
            settings = dataclasses.replace(settings, web_port=web_port)
        app, context = create_app(worker=settings)
        watch_kafka_link(app, context.kafka)
        ensure_topics(context.kafka)
    except SettingError as exc:
        click.echo(f"vigie worker: {exc}", err=True)
        sys.exit(2)
    # Faust's worker installs the SIGTERM/SIGINT handlers that stop the agents, flush the
    # producer and commit offsets before exiting.
    worker = VigieWorker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()
