"""Every Prometheus metric Vigie exports, defined once.

Other modules use them as `from pipeline import metrics; metrics.X.labels(...).inc()`.
Names follow the Prometheus conventions: a `vigie_` prefix, counters ending in `_total`,
base units (seconds, messages) as a suffix, and bounded label sets only: brand, source,
receiver, topic and enum-like values are fine; a post id, URL or author never is, since
every distinct label value is a new time series kept in memory forever.

All metrics live in prometheus-client's default registry, so one `/metrics` endpoint per
process (`start_http_server` below, or the Faust worker's web view) exposes them all.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import prometheus_client
from prometheus_client import Counter, Gauge, Histogram

from pipeline.settings import env_int, env_str

__all__ = [
    "ALERT_END_TO_END_SECONDS",
    "BRAND_EXPECTED",
    "BRAND_OBSERVED",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "INCIDENTS_OPEN",
    "INCIDENT_EVENTS",
    "KAFKA_CLIENT_LOG_LINES_HELD",
    "KAFKA_CONNECTED",
    "KAFKA_OUTAGES",
    "KAFKA_OUTAGE_SECONDS",
    "MENTIONS",
    "MENTIONS_RECOUNTED",
    "MODEL_BATCH_SECONDS",
    "MODEL_BATCH_SIZE",
    "MODEL_CACHE_HITS",
    "MODEL_POSTS_SCORED",
    "NOTIFICATIONS",
    "NOTIFICATIONS_PENDING",
    "NOTIFICATION_SECONDS",
    "POSTS_DUPLICATE",
    "POSTS_INVALID",
    "POSTS_PRODUCED",
    "POSTS_PRODUCE_FAILED",
    "POSTS_UNACKNOWLEDGED",
    "POSTS_UNMATCHED",
    "POSTS_VALID",
    "RECORDS_TOO_LARGE",
    "SOURCE_ITEMS",
    "SOURCE_LAG_SECONDS",
    "SOURCE_RECONNECTS",
    "WATCHLIST_BRANDS",
    "WATCHLIST_INFO",
    "WATCHLIST_LOADED_TIMESTAMP",
    "WATCHLIST_RELOAD_ERRORS",
    "WATCHLIST_RELOAD_FAILING",
    "MetricsSettings",
    "TopicPartitionLike",
    "all_metrics",
    "consumer_lag_by_topic",
    "exposition",
    "faust_consumer_lag_task",
    "record_consumer_lag",
    "start_http_server",
]

log = logging.getLogger(__name__)

# --- Ingestion (producers and sources) -----------------------------------------------------

POSTS_PRODUCED = Counter(
    "vigie_posts_produced_total",
    "Posts acknowledged by Kafka on the raw posts topic, by source.",
    ["source"],
)
POSTS_PRODUCE_FAILED = Counter(
    "vigie_posts_produce_failed_total",
    "Posts that Kafka did not acknowledge after the producer's retries, by source.",
    ["source"],
)
POSTS_UNACKNOWLEDGED = Gauge(
    "vigie_posts_unacknowledged",
    "Posts handed to the producer that Kafka has not acknowledged yet, by source (they "
    "wait in memory, within VIGIE_PRODUCER_BUFFER_BYTES, while Kafka is away).",
    ["source"],
)
SOURCE_ITEMS = Counter(
    "vigie_source_items_total",
    "Items read from a source, by what became of them (produced, invalid, duplicate, filtered).",
    ["source", "outcome"],
)
SOURCE_RECONNECTS = Counter(
    "vigie_source_reconnects_total",
    "Times a streaming source lost its connection and reconnected.",
    ["source"],
)
SOURCE_LAG_SECONDS = Gauge(
    "vigie_source_lag_seconds",
    "Seconds between now and the created_at of the newest item read from a source.",
    ["source"],
    unit="seconds",
)

# --- Validation (worker) --------------------------------------------------------------------

POSTS_VALID = Counter(
    "vigie_posts_valid_total",
    "Raw posts that passed validation and were forwarded to the valid posts topic.",
)
POSTS_INVALID = Counter(
    "vigie_posts_invalid_total",
    "Raw posts rejected by validation and sent to the dead-letter topic, by reason.",
    ["reason"],
)
POSTS_DUPLICATE = Counter(
    "vigie_posts_duplicate_total",
    "Valid posts dropped because the same post (platform:id) was already seen.",
)
RECORDS_TOO_LARGE = Counter(
    "vigie_records_too_large_total",
    "Records a worker could not write to a topic because of their size, dead-lettered "
    "instead (a bounded copy), by stage and topic.",
    ["stage", "topic"],
)

# --- Scoring (worker) -----------------------------------------------------------------------
POSTS_UNMATCHED = Counter(
    "vigie_posts_unmatched_total",
    "Valid posts that mention no watched brand (counted, not scored).",
)


MENTIONS = Counter(
    "vigie_mentions_total",
    "Scored brand mentions, by brand and sentiment label.",
    ["brand", "sentiment"],
)
MENTIONS_RECOUNTED = Counter(
    "vigie_mentions_recounted_total",
    "Mentions of a post the detector had already counted for the brand (re-scored after a "
    "score worker stopped before committing), not counted again.",
    ["brand"],
)
MODEL_BATCH_SIZE = Histogram(
    "vigie_model_batch_size",
    "Posts per sentiment model batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
MODEL_BATCH_SECONDS = Histogram(
    "vigie_model_batch_duration_seconds",
    "Wall time of one sentiment model batch, in seconds.",
    unit="seconds",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
MODEL_POSTS_SCORED = Counter(
    "vigie_model_posts_scored_total",
    "Posts whose sentiment was computed by the model (cache hits excluded).",
)
MODEL_CACHE_HITS = Counter(
    "vigie_model_cache_hits_total",
    "Posts whose sentiment came from the score cache instead of the model.",
)

# --- Detection (worker) ---------------------------------------------------------------------

BRAND_OBSERVED = Gauge(
    "vigie_brand_observed",
    "Observed value of a brand measure in the latest closed detection interval "
    "(measure = mentions | negative | reach_negative).",
    ["brand", "measure"],
)
BRAND_EXPECTED = Gauge(
    "vigie_brand_expected",
    "Expected value of a brand measure for the latest closed detection interval, "
    "from the brand's baseline (measure = mentions | negative | reach_negative).",
    ["brand", "measure"],
)
INCIDENTS_OPEN = Gauge(
    "vigie_incidents_open",
    "Incidents currently open, by brand and severity.",
    ["brand", "severity"],
)
INCIDENT_EVENTS = Counter(
    "vigie_incident_events_total",
    "Incident lifecycle events (opened, escalated, updated, resolved...), by brand and severity.",
    ["brand", "event", "severity"],
)

# --- Alerting (worker) ----------------------------------------------------------------------

NOTIFICATIONS = Counter(
    "vigie_notifications_total",
    "Notification attempts by receiver and outcome "
    "(sent, retried, failed, silenced, deduplicated).",
    ["receiver", "receiver_type", "outcome"],
)
NOTIFICATIONS_PENDING = Gauge(
    "vigie_notifications_pending",
    "Notifications this process is delivering and has not yet sent or given up on, by "
    "receiver: above 0 for minutes means the receiver is down and retries are running.",
    ["receiver", "receiver_type"],
)
NOTIFICATION_SECONDS = Histogram(
    "vigie_notification_delivery_duration_seconds",
    "Time to deliver one notification to its receiver, retries included, in seconds.",
    ["receiver_type"],
    unit="seconds",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
ALERT_END_TO_END_SECONDS = Histogram(
    "vigie_alert_end_to_end_seconds",
    "Seconds from the created_at of an incident's first post to its notification being "
    "sent: the delay a brand owner actually experiences.",
    unit="seconds",
    buckets=(1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600),
)

# --- Dead letters (worker) -----------------------------------------------------------------

DEAD_LETTERS = Counter(
    "vigie_dead_letters_total",
    "Records sent to a dead-letter topic, by topic (posts.dlq, mentions.dlq, alerts.dlq), "
    "stage and reason.",
    ["dlq", "stage", "reason"],
)

# --- Watchlist (worker) ---------------------------------------------------------------------

WATCHLIST_INFO = Gauge(
    "vigie_watchlist_info",
    "1 for the watchlist version every stage of this worker uses now (version = the first "
    "12 hex digits of the file's SHA-256); compare across workers.",
    ["version"],
)
WATCHLIST_BRANDS = Gauge(
    "vigie_watchlist_brands",
    "Brands in the watchlist this worker uses now.",
)
WATCHLIST_LOADED_TIMESTAMP = Gauge(
    "vigie_watchlist_loaded_timestamp_seconds",
    "Unix time when the watchlist this worker uses was loaded.",
    unit="seconds",
)
WATCHLIST_RELOAD_ERRORS = Counter(
    "vigie_watchlist_reload_errors_total",
    "Edits of the watchlist file that could not be used (the last good version stays).",
)
WATCHLIST_RELOAD_FAILING = Gauge(
    "vigie_watchlist_reload_failing",
    "1 while the watchlist file on disk is unusable and the worker runs an older version.",
)

# --- Link to Kafka (every process) ---------------------------------------------------------

KAFKA_CONNECTED = Gauge(
    "vigie_kafka_connected",
    "1 while this process reaches Kafka, 0 from the first failed connection until Kafka "
    "answers again, by client (the worker, or the source a producer sends for).",
    ["client"],
)
KAFKA_OUTAGES = Counter(
    "vigie_kafka_outages_total",
    "Times this process lost its connection to Kafka, by client.",
    ["client"],
)
KAFKA_OUTAGE_SECONDS = Counter(
    "vigie_kafka_outage_seconds_total",
    "Seconds spent without Kafka, by client (added when an outage ends).",
    ["client"],
    unit="seconds",
)
KAFKA_CLIENT_LOG_LINES_HELD = Counter(
    "vigie_kafka_client_log_lines_held_total",
    "Warnings and errors of the Kafka client libraries kept out of the log during an "
    "outage, which is logged once when it starts and once when it ends, by client.",
    ["client"],
)

# --- Kafka consumption (worker) -------------------------------------------------------------

CONSUMER_LAG = Gauge(
    "vigie_consumer_lag_messages",
    "Messages written to a topic but not yet committed by this worker's consumer group "
    "(summed over the partitions this worker is assigned).",
    ["topic"],
    unit="messages",
)


def all_metrics() -> list[prometheus_client.metrics.MetricWrapperBase]:
    """Every metric defined in this module (for tests and documentation)."""
    return [value for value in globals().values() if isinstance(value, (Counter, Gauge, Histogram))]


# --- Exposition -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricsSettings:
    """Where a process exposes `/metrics`.

    VIGIE_METRICS_PORT: port of the prometheus-client HTTP server (0 = no server; the Faust
    worker exposes /metrics on its web port VIGIE_WEB_PORT instead).
    VIGIE_METRICS_ADDR: address it listens on (0.0.0.0 so that Prometheus in another
    container or pod can scrape it).
    """

    port: int = 0
    addr: str = "0.0.0.0"

    @classmethod
    def from_env(cls) -> MetricsSettings:
        return cls(
            port=env_int("VIGIE_METRICS_PORT", cls.port, minimum=0),
            addr=env_str("VIGIE_METRICS_ADDR", cls.addr),
        )


_servers: dict[tuple[str, int], Any] = {}
_servers_lock = threading.Lock()


def start_http_server(port: int | None = None, addr: str | None = None) -> int | None:
    """Serve /metrics from a background thread; returns the bound port, None when off.

    With no arguments the port and address come from VIGIE_METRICS_PORT and
    VIGIE_METRICS_ADDR. Port 0 means off (no server). Calling it twice for the same
    address and port is harmless: a producer CLI and a source in the same process may
    both ask for it.
    """
    settings = MetricsSettings.from_env()
    port = settings.port if port is None else port
    addr = settings.addr if addr is None else addr
    if port == 0:
        return None
    with _servers_lock:
        if (addr, port) not in _servers:
            server, _thread = prometheus_client.start_http_server(port, addr=addr)
            _servers[(addr, port)] = server
            log.info("serving Prometheus metrics on http://%s:%d/metrics", addr, port)
    return port


def exposition() -> tuple[bytes, str]:
    """The /metrics body and its content type, for a web framework's own view."""
    return prometheus_client.generate_latest(), prometheus_client.CONTENT_TYPE_LATEST


# --- Consumer lag ---------------------------------------------------------------------------


class TopicPartitionLike(Protocol):
    topic: str
    partition: int


class _TP(NamedTuple):
    topic: str
    partition: int


def consumer_lag_by_topic(
    committed: Mapping[Any, int | None],
    end_offsets: Mapping[Any, int | None],
) -> dict[str, int]:
    """Lag per topic: the sum over partitions of (end offset - committed offset).

    Keys are topic-partitions: any object with `.topic` and `.partition` (faust's and
    aiokafka's TP) or a `(topic, partition)` tuple. Kafka's committed offset is the next
    offset to read and the end offset (high watermark) the next one to be written, so
    their difference is the number of messages still to process. A partition with no
    committed offset yet counts its whole end offset (nothing has been processed; on a
    compacted or expired log that overestimates, which errs on the side of alerting). A
    partition whose end offset is unknown is skipped. Never negative: a commit can be
    seen before the refreshed end offset.
    """
    committed_by_tp = {_as_tp(key): offset for key, offset in committed.items()}
    lags: dict[str, int] = {}
    for key, end in end_offsets.items():
        tp = _as_tp(key)
        lags.setdefault(tp.topic, 0)
        if end is None:
            continue
        done = committed_by_tp.get(tp)
        behind = end - (done if done is not None and done >= 0 else 0)
        lags[tp.topic] += max(behind, 0)
    return lags


def record_consumer_lag(lags: Mapping[str, int], previous_topics: Iterable[str] = ()) -> None:
    """Set CONSUMER_LAG per topic; topics no longer assigned drop back to absent."""
    for topic in set(previous_topics) - set(lags):
        try:
            CONSUMER_LAG.remove(topic)
        except KeyError:
            pass
    for topic, lag in lags.items():
        CONSUMER_LAG.labels(topic=topic).set(lag)


def _as_tp(key: Any) -> _TP:
    if hasattr(key, "topic") and hasattr(key, "partition"):
        return _TP(str(key.topic), int(key.partition))
    topic, partition = key
    return _TP(str(topic), int(partition))


async def faust_consumer_lag_task(
    app: Any,
    interval: float = 10.0,
    *,
    stop: asyncio.Event | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_offsets: Callable[[Mapping[Any, int | None], Mapping[Any, int | None]], None]
    | None = None,
) -> None:
    """Refresh CONSUMER_LAG every `interval` seconds from a running Faust app.

    Hook it into the worker with `app.timer(interval)` or
    `@app.task async def lag(): await faust_consumer_lag_task(app)`. It reads the
    partitions assigned to this worker, the group's committed offsets (from the broker,
    so that it reflects what a restart would resume from) and the end offsets; each
    worker reports the lag of its own partitions, and Prometheus sums over workers.
    `on_offsets(committed, end_offsets)` also gets each reading (the liveness check).
    """
    previous: set[str] = set()
    while stop is None or not stop.is_set():
        try:
            committed, end_offsets = await read_faust_offsets(app)
            if on_offsets is not None:
                on_offsets(committed, end_offsets)
            lags = consumer_lag_by_topic(committed, end_offsets)
            record_consumer_lag(lags, previous)
            previous = set(lags)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a lag probe must never take the worker down
            if on_error is not None:
                on_error(exc)
            else:
                log.warning("consumer lag probe failed: %s", exc)
        try:
            if stop is None:
                await asyncio.sleep(interval)
            else:
                await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass


async def read_faust_consumer_lag(app: Any) -> dict[str, int]:
    """One lag reading from a Faust app's consumer (see `faust_consumer_lag_task`)."""
    return consumer_lag_by_topic(*await read_faust_offsets(app))


async def read_faust_offsets(app: Any) -> tuple[dict[Any, int | None], dict[Any, int | None]]:
    """(committed, end offsets) of the partitions assigned to a Faust app's consumer.

    Committed offsets come from Faust's own record of what it committed (Kafka semantics:
    the next offset to read); end offsets from `consumer.highwaters()`, which asks the
    broker through Faust's consumer thread (the aiokafka consumer lives on that thread's
    event loop, so it must not be called directly from the app's loop). Changelog and
    assignor topics are Faust's internal state: Faust never commits them, so they are left
    out rather than reported as permanently lagging.
    """
    consumer = app.consumer
    internal = set(getattr(app.tables, "changelog_topics", set()))
    tps = sorted(
        (
            tp
            for tp in consumer.assignment()
            if tp.topic not in internal and "-__assignor-" not in tp.topic
        ),
        key=lambda tp: (tp.topic, tp.partition),
    )
    if not tps:
        return {}, {}
    end_offsets = dict(await consumer.highwaters(*tps))
    committed_record = getattr(consumer, "_committed_offset", {})
    committed = {tp: committed_record.get(tp) for tp in tps}
    return committed, end_offsets
