"""`vigie silence add|list|expire`: time-boxed "do not send" rules, kept in Kafka.

Silences live in the compacted topic `alerts.silences` (key: silence id), so every worker
sees them within a tick and they survive restarts. Expiring a silence writes it again
with its end set to now; the history stays readable with `list --all`.
"""

from __future__ import annotations

import getpass
import sys
import time
from datetime import UTC, datetime

import click
import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from pipeline.notify.silences import Silence, SilenceError, new_silence, parse_duration
from pipeline.settings import KafkaSettings, SettingError, WorkerSettings
from pipeline.topics import ALERTS_SILENCES, ensure_topics
from pipeline.watchlist import WatchlistError, load_watchlist


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"vigie silence: {message}", err=True)
    sys.exit(code)


def _kafka() -> KafkaSettings:
    try:
        return KafkaSettings.from_env()
    except SettingError as exc:
        _fail(str(exc))
        raise  # unreachable


def read_silences(kafka: KafkaSettings) -> dict[str, Silence]:
    """Every silence (latest version per id), read from the beginning to the end."""
    ensure_topics(kafka, [ALERTS_SILENCES])
    consumer = KafkaConsumer(**kafka.kafka_python_config(), group_id=None, enable_auto_commit=False)
    try:
        topic = kafka.topic(ALERTS_SILENCES)
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        silences: dict[str, Silence] = {}
        deadline = time.monotonic() + 30
        while any(consumer.position(tp) < end for tp, end in ends.items()):
            if time.monotonic() > deadline:
                raise KafkaError(f"could not read {topic} to its end within 30 s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    key = record.key.decode() if record.key else ""
                    if record.value is None:
                        silences.pop(key, None)
                        continue
                    try:
                        silences[key] = Silence.from_record(orjson.loads(record.value))
                    except (SilenceError, orjson.JSONDecodeError):
                        click.echo(f"warning: unreadable silence record {key!r}", err=True)
        return silences
    finally:
        consumer.close()


def write_silence(kafka: KafkaSettings, silence: Silence) -> None:
    ensure_topics(kafka, [ALERTS_SILENCES])
    producer = KafkaProducer(**kafka.kafka_python_config(), acks="all")
    try:
        producer.send(
            kafka.topic(ALERTS_SILENCES), key=silence.id.encode(),
            value=orjson.dumps(silence.to_record()),
        ).get(timeout=30)
    finally:
        producer.close()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _describe(silence: Silence, now: float) -> str:
    state = (
        "active"
        if silence.is_active(now)
        else ("pending" if now < silence.starts_at else "expired")
    )
    severity = f" severity<={silence.severity}" if silence.severity else ""
    return (
        f"{silence.id}  {state:<8} brand={silence.brand}{severity}  "
        f"{_iso(silence.starts_at)} -> {_iso(silence.ends_at)}  by {silence.created_by}: "
        f"{silence.reason}"
    )


@click.group(name="silence")
def command() -> None:
    """Silence a brand's alerts for a while (kept in Kafka, seen by every worker)."""


@command.command("add")
@click.option("--brand", required=True, help="Brand id from the watchlist.")
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d12h...")
@click.option("--reason", required=True, help="Why (shown in list and in alerts.log).")
@click.option(
    "--severity",
    type=click.Choice(["info", "warning", "critical"]),
    help="Silence only this severity and below (default: all).",
)
@click.option("--by", "created_by", default=None, help="Who (default: the login name).")
@click.option("--json", "as_json", is_flag=True, help="Print the silence as JSON.")
def add(
    brand: str,
    duration: str,
    reason: str,
    severity: str | None,
    created_by: str | None,
    as_json: bool,
) -> None:
    """Create a silence; prints its id."""
    kafka = _kafka()
    try:
        watchlist = load_watchlist(WorkerSettings.from_env().watchlist)
    except (WatchlistError, SettingError) as exc:
        _fail(str(exc))
    if brand not in watchlist.brands:
        _fail(
            f"unknown brand {brand!r} (watchlist {watchlist.path}: "
            f"{', '.join(sorted(watchlist.brands))})"
        )
    try:
        silence = new_silence(
            brand,
            parse_duration(duration),
            reason,
            created_by or getpass.getuser(),
            now=time.time(),
            severity=severity,
        )
        write_silence(kafka, silence)
    except SilenceError as exc:
        _fail(str(exc))
    except KafkaError as exc:
        _fail(f"cannot reach Kafka: {exc}", 1)
    if as_json:
        click.echo(orjson.dumps(silence.to_record()).decode())
    else:
        click.echo(f"silence {silence.id} created: {_describe(silence, time.time())}")


@command.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_silences(show_all: bool, as_json: bool) -> None:
    """Show active and pending silences (or all of them)."""
    try:
        silences = read_silences(_kafka())
    except KafkaError as exc:
        _fail(f"cannot reach Kafka: {exc}", 1)
    now = time.time()
    shown = sorted(
        (s for s in silences.values() if show_all or s.ends_at > now), key=lambda s: s.starts_at
    )
    for silence in shown:
        if as_json:
            click.echo(orjson.dumps(silence.to_record()).decode())
        else:
            click.echo(_describe(silence, now))
    if not shown and not as_json:
        click.echo("no silences")


@command.command("expire")
@click.argument("silence_id")
@click.option("--by", "expired_by", default=None, help="Who (default: the login name).")
def expire(silence_id: str, expired_by: str | None) -> None:
    """End a silence now."""
    kafka = _kafka()
    try:
        silences = read_silences(kafka)
        if silence_id not in silences:
            _fail(f"no silence with id {silence_id!r}", 1)
        ended = silences[silence_id].expire(time.time(), expired_by or getpass.getuser())
        write_silence(kafka, ended)
    except KafkaError as exc:
        _fail(f"cannot reach Kafka: {exc}", 1)
    click.echo(f"silence {silence_id} expired")
