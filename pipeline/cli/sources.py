"""`vigie ingest bluesky|mastodon|x|reddit|rss|serve`: the live sources.

Every connector command reads its settings from `VIGIE_*` variables (options override the
most common ones), pre-filters with the watchlist (`--no-filter` to take everything),
writes to `posts.raw` (`--dry-run` prints JSON lines instead), stops cleanly on SIGTERM
or Ctrl-C (flush, save the resume state, exit 0) and prints a JSON summary on stderr.
Exit 1 when it cannot go on (bad credentials, Kafka not acknowledging, bad settings).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from pipeline.cli.exits import ConfigError
from pipeline.settings import LogSettings, SettingError, WorkerSettings
from pipeline.sources.connector import Connector
from pipeline.sources.errors import FatalSourceError
from pipeline.sources.items import TextFilter
from pipeline.sources.runner import RunnerSettings, SourceRunner, run_until_signal
from pipeline.sources.search_terms import BrandTerms, load_watch
from pipeline.sources.sinks import PostSink

__all__ = ["SOURCE_COMMANDS", "setup_logging"]

log = logging.getLogger("vigie.sources")


def setup_logging() -> None:
    """Log lines on stderr at VIGIE_LOG_LEVEL, for every `vigie ingest` command."""
    level = LogSettings.from_env().level
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # kafka-python narrates every connection at INFO; its warnings are what matter (and
    # an outage is summarised by pipeline.kafka_link).
    logging.getLogger("kafka").setLevel(logging.WARNING)


def _start_metrics() -> None:
    from pipeline import metrics

    metrics.start_http_server()  # VIGIE_METRICS_PORT; 0 (the default) serves nothing


def _sink(source: str, dry_run: bool) -> PostSink:
    if dry_run:
        from pipeline.sources.sinks import PrintSink

        return PrintSink()
    from kafka.errors import KafkaError

    from pipeline.settings import KafkaSettings
    from pipeline.sources.sinks import KafkaSink

    kafka = KafkaSettings.from_env()
    try:
        return KafkaSink(kafka, source=source)
    except KafkaError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {kafka.bootstrap_servers}: {exc}"
        ) from None


def _watch(use_filter: bool, watchlist: Path | None) -> tuple[TextFilter | None, list[BrandTerms]]:
    if not use_filter:
        return None, []
    path = watchlist or WorkerSettings.from_env().watchlist
    try:
        return load_watch(path)
    except FatalSourceError as exc:
        raise click.ClickException(str(exc)) from None


def _run(
    source: str,
    build: Callable[[list[BrandTerms]], Connector],
    *,
    use_filter: bool,
    watchlist: Path | None,
    dry_run: bool,
    once: bool,
    state_name: str | None,
) -> None:
    """Build the connector, run it until SIGTERM (or the end with --once), report."""
    setup_logging()
    try:
        text_filter, terms = _watch(use_filter, watchlist)
        connector = build(terms)
        settings = RunnerSettings.from_env()
    except (SettingError, FatalSourceError) as exc:  # before any connection: configuration
        raise ConfigError(str(exc)) from None
    _start_metrics()
    sink = _sink(source, dry_run)
    runner = SourceRunner(
        connector, sink, settings, text_filter=text_filter, state_name=state_name, once=once
    )
    log.info("%s: starting (state in %s)", runner.name, runner.store.path)
    try:
        report = asyncio.run(run_until_signal(runner))
    except FatalSourceError as exc:
        click.echo(json.dumps(runner.report.as_dict()), err=True)
        raise click.ClickException(str(exc)) from None
    finally:
        sink.close()
    click.echo(json.dumps(report.as_dict(), ensure_ascii=False), err=True)


def _common(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--dry-run", is_flag=True, help="Print posts as JSON lines, not to Kafka."),
        click.option(
            "--no-filter",
            "no_filter",
            is_flag=True,
            help="Take every post, not only those matching the watchlist.",
        ),
        click.option(
            "--watchlist",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Watchlist file (default: VIGIE_WATCHLIST, config/watchlist.yaml).",
        ),
        click.option(
            "--state-name",
            default=None,
            help="Name of the resume-state file, to run several instances of one source.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


# --------------------------------------------------------------------------- commands


@click.command(name="bluesky")
@click.option("--url", default=None, help="Jetstream subscribe URL (VIGIE_BLUESKY_URL).")
@_common
def bluesky(
    url: str | None, dry_run: bool, no_filter: bool, watchlist: Path | None, state_name: str | None
) -> None:
    """Bluesky posts from Jetstream (no credentials; filtered here with the watchlist)."""
    from pipeline.sources.bluesky import BlueskyConnector, BlueskySettings

    def build(_terms: list[BrandTerms]) -> Connector:
        settings = BlueskySettings.from_env()
        return BlueskyConnector(replace(settings, url=url) if url else settings)

    _run(
        "bluesky",
        build,
        use_filter=not no_filter,
        watchlist=watchlist,
        dry_run=dry_run,
        once=False,
        state_name=state_name,
    )


@click.command(name="mastodon")
@click.option("--url", default=None, help="Instance base URL (VIGIE_MASTODON_URL).")
@click.option(
    "--stream",
    "streams",
    multiple=True,
    help="public, public:local, hashtag:<tag>, list:<id>, search:<words>, or 'watchlist' for"
    " every brand hashtag (VIGIE_MASTODON_STREAMS).",
)
@click.option("--poll", is_flag=True, help="Poll the timelines instead of streaming.")
@_common
def mastodon(
    url: str | None,
    streams: tuple[str, ...],
    poll: bool,
    dry_run: bool,
    no_filter: bool,
    watchlist: Path | None,
    state_name: str | None,
) -> None:
    """Mastodon statuses from the streaming API (access token), with timeline catch-up."""
    from pipeline.sources.mastodon import MastodonConnector, MastodonSettings, parse_streams

    def build(terms: list[BrandTerms]) -> Connector:
        settings = MastodonSettings.from_env()
        changes: dict[str, Any] = {}
        if url:
            changes["url"] = url.rstrip("/")
        if poll:
            changes["mode"] = "poll"
        wanted = ",".join(streams)
        if "watchlist" in streams:
            tags = sorted({h.lstrip("#") for t in terms for h in t.hashtags})
            if not tags:
                raise SettingError("--stream watchlist: the watchlist has no hashtags")
            wanted = ",".join([s for s in streams if s != "watchlist"] + [f"#{t}" for t in tags])
        if wanted:
            changes["streams"] = parse_streams(wanted)
        return MastodonConnector(replace(settings, **changes))

    _run(
        "mastodon",
        build,
        use_filter=not no_filter,
        watchlist=watchlist,
        dry_run=dry_run,
        once=False,
        state_name=state_name,
    )


@click.command(name="x")
@_common
def x_stream(
    dry_run: bool, no_filter: bool, watchlist: Path | None, state_name: str | None
) -> None:
    """X (Twitter) posts from the v2 filtered stream; rules follow the watchlist."""
    from pipeline.sources.search_terms import x_rules
    from pipeline.sources.twitter import XConnector, XSettings

    if no_filter:
        raise click.UsageError(
            "the X stream only carries what its rules ask for: it needs"
            " the watchlist (drop --no-filter)"
        )

    def build(terms: list[BrandTerms]) -> Connector:
        settings = XSettings.from_env()
        return XConnector(settings, rules=x_rules(terms, settings.rule_max_length))

    _run(
        "x",
        build,
        use_filter=True,
        watchlist=watchlist,
        dry_run=dry_run,
        once=False,
        state_name=state_name,
    )


@click.command(name="reddit")
@click.option(
    "--subreddit",
    "subreddits",
    multiple=True,
    help="Subreddit to follow (repeat; VIGIE_REDDIT_SUBREDDITS).",
)
@click.option("--once", is_flag=True, help="Poll every listing once, then exit.")
@_common
def reddit(
    subreddits: tuple[str, ...],
    once: bool,
    dry_run: bool,
    no_filter: bool,
    watchlist: Path | None,
    state_name: str | None,
) -> None:
    """Reddit posts and comments (OAuth client credentials), polled within the limits."""
    from pipeline.sources.reddit import RedditConnector, RedditSettings
    from pipeline.sources.search_terms import reddit_query

    def build(terms: list[BrandTerms]) -> Connector:
        settings = RedditSettings.from_env()
        if subreddits:
            settings = replace(settings, subreddits=tuple(s.removeprefix("r/") for s in subreddits))
        return RedditConnector(settings, queries=reddit_query(terms))

    _run(
        "reddit",
        build,
        use_filter=not no_filter,
        watchlist=watchlist,
        dry_run=dry_run,
        once=once,
        state_name=state_name,
    )


@click.command(name="rss")
@click.option(
    "--feeds",
    "feeds_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Feeds file, YAML or one URL a line (VIGIE_RSS_FEEDS_FILE).",
)
@click.option("--once", is_flag=True, help="Read every feed once, then exit.")
@_common
def rss(
    feeds_file: Path | None,
    once: bool,
    dry_run: bool,
    no_filter: bool,
    watchlist: Path | None,
    state_name: str | None,
) -> None:
    """Blogs and news from RSS/Atom feeds, each on its own interval, conditional GETs."""
    from pipeline.sources.rss import RssConnector, RssSettings, load_feeds

    def build(_terms: list[BrandTerms]) -> Connector:
        settings = RssSettings.from_env()
        path = feeds_file or (Path(settings.feeds_file) if settings.feeds_file else None)
        if path is None:
            raise SettingError("set VIGIE_RSS_FEEDS_FILE or pass --feeds")
        return RssConnector(settings, load_feeds(path, settings.default_interval))

    _run(
        "rss",
        build,
        use_filter=not no_filter,
        watchlist=watchlist,
        dry_run=dry_run,
        once=once,
        state_name=state_name,
    )


@click.command(name="serve")
@click.option("--host", default=None, help="Address to listen on (VIGIE_INGEST_HOST).")
@click.option("--port", type=int, default=None, help="Port (VIGIE_INGEST_PORT).")
@click.option("--dry-run", is_flag=True, help="Print accepted posts instead of sending them.")
def serve(host: str | None, port: int | None, dry_run: bool) -> None:
    """An authenticated HTTP endpoint for posts from any platform (token or HMAC)."""
    from pipeline.sources.push import PushServer, PushSettings

    setup_logging()
    try:
        settings = PushSettings.from_env()
        if host:
            settings = replace(settings, host=host)
        if port is not None:
            settings = replace(settings, port=port)
        sink = _sink("push", dry_run)
        server = PushServer(settings, sink)
    except SettingError as exc:
        raise ConfigError(str(exc)) from None
    _start_metrics()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        bound = await server.start()
        log.info("push endpoint on http://%s:%d/v1/posts", settings.host, bound)
        click.echo(json.dumps({"listening": f"http://{settings.host}:{bound}/v1/posts"}), err=True)
        await stop.wait()
        await server.stop()  # lets requests in flight finish (they wait for their acks)

    try:
        asyncio.run(main())
    finally:
        sink.close()


SOURCE_COMMANDS: dict[str, click.Command] = {
    "bluesky": bluesky,
    "mastodon": mastodon,
    "x": x_stream,
    "reddit": reddit,
    "rss": rss,
    "serve": serve,
}
