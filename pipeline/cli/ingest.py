"""`vigie ingest ...`: put posts on `posts.raw` (file replay, generator, live sources)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import click
import orjson
from kafka.errors import KafkaError, MessageSizeTooLargeError
from tqdm import tqdm

from pipeline import metrics
from pipeline.cli.exits import ConfigError
from pipeline.cli.sources import SOURCE_COMMANDS, setup_logging
from pipeline.generator import BrandProfile, Generator, Scenario
from pipeline.limits import MAX_MESSAGE_BYTES, fits
from pipeline.producer import PostProducer, ProducerAbandoned
from pipeline.records import post_key
from pipeline.replay import FileRecord, Pacer, read_records
from pipeline.schema import parse_timestamp
from pipeline.settings import KafkaSettings, WorkerSettings
from pipeline.watchlist import WatchlistError, load_watchlist


@click.group(name="ingest")
def command() -> None:
    """Put posts on Kafka's posts.raw: replay a file, generate a stream, or listen to a source."""


class _Interrupted:
    """Turns Ctrl-C and SIGTERM into a flag so the loop stops, waits for Kafka's
    acknowledgements and reports; a second signal gives up waiting (`on_second`)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.on_second: Callable[[], None] | None = None

    def __enter__(self) -> _Interrupted:
        self._previous = {sig: signal.signal(sig, self._handle)
                          for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is None:
            # Said at once: a send may be waiting for Kafka (an outage) for a long time.
            click.echo("interrupted: waiting for Kafka to acknowledge what was sent "
                       "(Ctrl-C again to give up)…", err=True)
        elif self.on_second is not None:
            self.on_second()
        self.signal = signum

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _produce(records: Iterable[FileRecord], source: str, pacer: Pacer, total: int | None,
             quiet: bool) -> None:
    """Send records, show progress, print a summary; exits 1 if anything was not delivered.

    A record larger than any Kafka record Vigie writes is reported and skipped, and the
    rest is sent (a record over VIGIE_MAX_RECORD_BYTES but under that is sent: the
    validate stage dead-letters it with its reason, like any other bad line).

    A broker outage only pauses it: posts wait in the producer (within
    VIGIE_PRODUCER_BUFFER_BYTES, then sending blocks) until Kafka takes them.
    """
    setup_logging()
    kafka = KafkaSettings.from_env()
    metrics.start_http_server()  # VIGIE_METRICS_PORT; 0 (the default) serves nothing
    started = time.monotonic()
    sent = 0
    too_large: list[str] = []
    try:
        producer = PostProducer(kafka, source=source)
    except KafkaError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}") from None
    with _Interrupted() as interrupted, tqdm(
        total=total, unit="post", disable=quiet, file=sys.stderr, mininterval=0.5
    ) as progress:
        interrupted.on_second = producer.abandon
        try:
            for record in records:
                if interrupted.signal is not None:
                    break
                pacer.wait(record.created_at)
                if fits(record.key.encode(), record.value):
                    try:
                        producer.send_raw(record.key, record.value)
                        sent += 1
                    except MessageSizeTooLargeError:
                        too_large.append(_too_large(record))
                else:
                    too_large.append(_too_large(record))
                progress.update(1)
        except ProducerAbandoned:
            pass
        finally:
            producer.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    undelivered = sent - producer.delivered
    summary = {
        "source": source, "topic": producer.topic, "sent": sent,
        "delivered": producer.delivered, "failed": producer.failed,
        "not_acknowledged": undelivered - producer.failed,
        "seconds": round(elapsed, 3), "posts_per_s": round(producer.delivered / elapsed, 1),
        "interrupted": interrupted.signal is not None,
        "too_large": len(too_large),
    }
    if too_large:
        summary["too_large_records"] = too_large[:20]
    if producer.errors:
        summary["errors"] = producer.errors
    click.echo(orjson.dumps(summary).decode())
    if too_large:
        click.echo(f"vigie ingest: {len(too_large)} record(s) over the {MAX_MESSAGE_BYTES} "
                   f"bytes of a Kafka record were skipped: {', '.join(too_large[:5])}"
                   f"{' …' if len(too_large) > 5 else ''}", err=True)
    if undelivered:
        click.echo(f"vigie ingest: {undelivered} of {sent} posts were not "
                   f"delivered to {producer.topic}", err=True)
    if too_large or undelivered:
        sys.exit(1)


def _too_large(record: FileRecord) -> str:
    where = f"line {record.line}" if record.line is not None else record.key[:80]
    return f"{where} ({len(record.value)} bytes)"


@command.command(name="file")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="Posts per second (default: as fast as possible).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True),
              help="Replay at X times the original pace, using created_at.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest_file(path: Path, rate: float | None, speed: float | None, quiet: bool) -> None:
    """Replay posts from a JSONL or CSV file (lines that are not valid posts are sent too,
    and the validate stage dead-letters them with the reason)."""
    if rate and speed:
        raise click.UsageError("choose --rate or --speed, not both")
    total = sum(1 for _ in read_records(path))
    _produce(read_records(path), f"file:{path.name}", Pacer(rate, speed), total, quiet)


def _parse_scenario(text: str) -> Scenario:
    """KIND:BRAND:START_MINUTE[:DURATION_MINUTES[:PEAK_PER_MINUTE]]"""
    parts = text.split(":")
    if len(parts) < 3:
        raise click.BadParameter(
            f"{text!r}: expected KIND:BRAND:START_MINUTE[:DURATION[:PEAK]], "
            f"KIND one of {', '.join(Scenario.KINDS)}"
        )
    try:
        numbers = [float(p) for p in parts[2:5]]
    except ValueError:
        raise click.BadParameter(f"{text!r}: minutes and peak must be numbers") from None
    kind, brand = parts[0], parts[1]
    if kind not in Scenario.KINDS:
        raise click.BadParameter(f"{text!r}: KIND must be one of {', '.join(Scenario.KINDS)}")
    defaults = [0.0, 30.0, 400.0]
    start, duration, peak = numbers + defaults[len(numbers):]
    return Scenario(kind, brand, start, duration, peak)


def brand_profiles(watchlist_path: Path, base_rate: float) -> list[BrandProfile]:
    try:
        watchlist = load_watchlist(watchlist_path)
    except WatchlistError as exc:
        raise ConfigError(str(exc)) from None
    return [
        BrandProfile(
            id=brand.id, names=(brand.name, *brand.aliases), hashtags=brand.hashtags,
            handles=brand.handles,
            # Brands differ in size: later brands in the file get a smaller audience.
            base_per_minute=base_rate / (1 + index * 0.5),
        )
        for index, brand in enumerate(watchlist.brands.values())
    ]


@command.command(name="generate")
@click.option("--watchlist", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Brands to talk about (default: VIGIE_WATCHLIST).")
@click.option("--minutes", default=120.0, show_default=True,
              help="Simulated minutes of stream.")
@click.option("--start", "start_text", help="Simulated start time, ISO 8601 "
              "(default: so that the stream ends now).")
@click.option("--scenario", "scenario_texts", multiple=True,
              help="KIND:BRAND:START_MINUTE[:DURATION[:PEAK]] with KIND one of "
              + ", ".join(Scenario.KINDS) + " (repeatable).")
@click.option("--base-rate", default=3.0, show_default=True,
              help="Mentions per minute of the first brand at its daily mean.")
@click.option("--seed", default=7, show_default=True)
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="Posts per second (default: as fast as possible).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True),
              help="X times real time, e.g. 60 = one simulated minute per second.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write JSONL to this file instead of Kafka.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(watchlist: Path | None, minutes: float, start_text: str | None,
             scenario_texts: tuple[str, ...], base_rate: float, seed: int, rate: float | None,
             speed: float | None, out: Path | None, quiet: bool) -> None:
    """Generate a realistic French/English stream with scripted incidents."""
    if rate and speed:
        raise click.UsageError("choose --rate or --speed, not both")
    profiles = brand_profiles(watchlist or WorkerSettings.from_env().watchlist, base_rate)
    if start_text:
        try:
            start = parse_timestamp(start_text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--start") from None
    else:
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes)
    try:
        generator = Generator(profiles, start, seed=seed,
                              scenarios=[_parse_scenario(t) for t in scenario_texts])
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from None
    if out is not None:
        count = 0
        with out.open("wb") as handle:
            for post in generator.posts(minutes):
                handle.write(orjson.dumps(post) + b"\n")
                count += 1
        click.echo(orjson.dumps({"out": str(out), "posts": count}).decode())
        return
    records = (FileRecord(post_key(p), orjson.dumps(p), parse_timestamp(p["created_at"]))
               for p in generator.posts(minutes))
    _produce(records, "generator", Pacer(rate, speed), None, quiet)


# Live connectors (Bluesky, Mastodon, X, Reddit, RSS, the push endpoint) bring their own
# click commands.
for _name, _source_command in SOURCE_COMMANDS.items():
    command.add_command(_source_command, name=_name)
