"""The metric catalogue: the names others code against, Prometheus conventions, lag arithmetic."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from pipeline import metrics

# The contract in the interfaces document: Python name -> (type, exported name, labels).
CONTRACT: dict[str, tuple[type, str, tuple[str, ...]]] = {
    "POSTS_PRODUCED": (Counter, "vigie_posts_produced_total", ("source",)),
    "POSTS_PRODUCE_FAILED": (Counter, "vigie_posts_produce_failed_total", ("source",)),
    "POSTS_VALID": (Counter, "vigie_posts_valid_total", ()),
    "POSTS_INVALID": (Counter, "vigie_posts_invalid_total", ("reason",)),
    "POSTS_DUPLICATE": (Counter, "vigie_posts_duplicate_total", ()),
    "RECORDS_TOO_LARGE": (Counter, "vigie_records_too_large_total", ("stage", "topic")),
    "POSTS_UNMATCHED": (Counter, "vigie_posts_unmatched_total", ()),
    "MENTIONS": (Counter, "vigie_mentions_total", ("brand", "sentiment")),
    "MENTIONS_RECOUNTED": (Counter, "vigie_mentions_recounted_total", ("brand",)),
    "MODEL_BATCH_SIZE": (Histogram, "vigie_model_batch_size", ()),
    "MODEL_BATCH_SECONDS": (Histogram, "vigie_model_batch_duration_seconds", ()),
    "MODEL_POSTS_SCORED": (Counter, "vigie_model_posts_scored_total", ()),
    "MODEL_CACHE_HITS": (Counter, "vigie_model_cache_hits_total", ()),
    "BRAND_OBSERVED": (Gauge, "vigie_brand_observed", ("brand", "measure")),
    "BRAND_EXPECTED": (Gauge, "vigie_brand_expected", ("brand", "measure")),
    "INCIDENTS_OPEN": (Gauge, "vigie_incidents_open", ("brand", "severity")),
    "INCIDENT_EVENTS": (Counter, "vigie_incident_events_total", ("brand", "event", "severity")),
    "NOTIFICATIONS": (
        Counter,
        "vigie_notifications_total",
        ("receiver", "receiver_type", "outcome"),
    ),
    "NOTIFICATION_SECONDS": (
        Histogram,
        "vigie_notification_delivery_duration_seconds",
        ("receiver_type",),
    ),
    "ALERT_END_TO_END_SECONDS": (Histogram, "vigie_alert_end_to_end_seconds", ()),
    "CONSUMER_LAG": (Gauge, "vigie_consumer_lag_messages", ("topic",)),
    "SOURCE_ITEMS": (Counter, "vigie_source_items_total", ("source", "outcome")),
    "SOURCE_RECONNECTS": (Counter, "vigie_source_reconnects_total", ("source",)),
    "SOURCE_LAG_SECONDS": (Gauge, "vigie_source_lag_seconds", ("source",)),
}

# Labels whose values are unbounded: one time series per post, URL or person.
UNBOUNDED_LABELS = {
    "id",
    "post_id",
    "post",
    "url",
    "link",
    "text",
    "author",
    "user",
    "key",
    "incident_id",
    "message",
    "error",
}


def exported_name(metric: Counter | Gauge | Histogram) -> str:
    """The name as scraped: counters carry `_total`, which prometheus-client stores apart."""
    return metric._name + ("_total" if isinstance(metric, Counter) else "")


@pytest.mark.parametrize("python_name", sorted(CONTRACT))
def test_contract_names_types_and_labels(python_name: str) -> None:
    kind, name, labels = CONTRACT[python_name]
    metric = getattr(metrics, python_name)
    assert isinstance(metric, kind)
    assert exported_name(metric) == name
    assert tuple(metric._labelnames) == labels


def test_all_metrics_lists_every_contracted_metric() -> None:
    defined = {exported_name(m) for m in metrics.all_metrics()}
    contracted = {name for _, name, _ in CONTRACT.values()}
    assert contracted <= defined


@pytest.mark.parametrize("metric", metrics.all_metrics(), ids=exported_name)
def test_naming_conventions(metric: Counter | Gauge | Histogram) -> None:
    name = exported_name(metric)
    assert name.startswith("vigie_")
    assert name == name.lower() and " " not in name
    if isinstance(metric, Counter):
        assert name.endswith("_total")
    else:
        assert not name.endswith("_total"), "only counters end in _total"
    # A time is in seconds, never milliseconds or minutes.
    for wrong_unit in ("_ms", "_milliseconds", "_minutes", "_hours", "_millis"):
        assert wrong_unit not in name
    if any(word in name for word in ("duration", "latency", "end_to_end")):
        assert name.endswith("_seconds")
    if "lag" in name:
        assert name.endswith(("_seconds", "_messages"))
    assert len(metric._documentation) > 20, "every metric explains itself"
    assert not UNBOUNDED_LABELS & set(metric._labelnames)


def test_histograms_have_increasing_finite_buckets() -> None:
    for metric in metrics.all_metrics():
        if not isinstance(metric, Histogram):
            continue
        bounds = [b for b in metric._upper_bounds if b != float("inf")]
        assert len(bounds) >= 8, exported_name(metric)
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)


def test_batch_duration_buckets_cover_a_slow_cpu_batch() -> None:
    # A transformer batch on CPU can take seconds; buckets must still resolve it.
    assert max(b for b in metrics.MODEL_BATCH_SECONDS._upper_bounds if b != float("inf")) >= 10


def test_lag_is_end_minus_committed_summed_per_topic() -> None:
    committed = {("posts.raw", 0): 10, ("posts.raw", 1): 4, ("posts.valid", 0): 7}
    end = {("posts.raw", 0): 15, ("posts.raw", 1): 4, ("posts.valid", 0): 9}
    assert metrics.consumer_lag_by_topic(committed, end) == {"posts.raw": 5, "posts.valid": 2}


def test_lag_without_commit_counts_the_whole_partition() -> None:
    assert metrics.consumer_lag_by_topic({}, {("incidents", 0): 12}) == {"incidents": 12}
    # Faust records "nothing committed" as None; aiokafka as -1.
    assert metrics.consumer_lag_by_topic(
        {("t", 0): None, ("t", 1): -1}, {("t", 0): 3, ("t", 1): 4}
    ) == {"t": 7}


def test_lag_skips_unknown_end_offsets_and_never_goes_negative() -> None:
    committed = {("t", 0): 20, ("t", 1): 5}
    # A commit seen before the refreshed end offset would give -2: it is 0.
    end = {("t", 0): 18, ("t", 1): None}
    assert metrics.consumer_lag_by_topic(committed, end) == {"t": 0}


def test_lag_accepts_topic_partition_objects() -> None:
    from faust.types import TP

    committed = {TP("posts.raw", 0): 1}
    end = {TP("posts.raw", 0): 4, TP("posts.raw", 1): 2}
    assert metrics.consumer_lag_by_topic(committed, end) == {"posts.raw": 5}


def test_record_consumer_lag_sets_and_forgets_topics() -> None:
    metrics.record_consumer_lag({"unit-a": 3, "unit-b": 0})
    assert REGISTRY.get_sample_value("vigie_consumer_lag_messages", {"topic": "unit-a"}) == 3
    metrics.record_consumer_lag({"unit-b": 8}, previous_topics={"unit-a", "unit-b"})
    assert REGISTRY.get_sample_value("vigie_consumer_lag_messages", {"topic": "unit-a"}) is None
    assert REGISTRY.get_sample_value("vigie_consumer_lag_messages", {"topic": "unit-b"}) == 8
    metrics.record_consumer_lag({}, previous_topics={"unit-b"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_http_server_serves_the_counters(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("VIGIE_METRICS_PORT", str(port))
    monkeypatch.setenv("VIGIE_METRICS_ADDR", "127.0.0.1")
    assert metrics.start_http_server() == port
    assert metrics.start_http_server() == port  # a second call is harmless
    metrics.POSTS_INVALID.labels(reason="unit-test-reason").inc(2)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert 'vigie_posts_invalid_total{reason="unit-test-reason"} 2.0' in body
    assert "# HELP vigie_consumer_lag_messages " in body


def test_port_zero_means_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_METRICS_PORT", "0")
    assert metrics.start_http_server() is None


def test_settings_reject_a_bad_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.settings import SettingError

    monkeypatch.setenv("VIGIE_METRICS_PORT", "metrics")
    with pytest.raises(SettingError, match="VIGIE_METRICS_PORT"):
        metrics.MetricsSettings.from_env()


def test_exposition_has_the_prometheus_content_type() -> None:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    assert b"vigie_posts_valid_total" in body
