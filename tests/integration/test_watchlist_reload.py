"""A brand added to the watchlist while the real `vigie worker` runs: every stage (score,
detect, alert) uses it within seconds, the version is visible in /metrics, and a bad edit
keeps the last good version and counts an error."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.incidents import incident_event
from tests.integration.notify_servers import HttpStandIn
from tests.integration.test_alerting_worker import FAST_ALERTS, send_incidents
from tests.integration.test_score import post

pytestmark = pytest.mark.integration

ACME = ("  - id: acme\n    name: ACME\n    owners:\n"
        "      - {name: Ops, receivers: [ops-hook], min_severity: info}\n")
NOVA = ("  - id: nova\n    name: Nova Energie\n    owners:\n"
        "      - {name: Nova PR, receivers: [ops-hook], min_severity: info}\n")


def version(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds it took for `condition` to hold; fails after `timeout_s`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if condition():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def metric(text: str, name: str, **labels: str) -> float | None:
    label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{label_text}}}" if labels else name) + r" (\S+)"
    found = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def mentions_of(kafka_settings, topic: str, brand: str, timeout_s: float) -> list[dict]:
    """Records keyed `brand` on `topic` that are not detect's clock ticks."""
    consumer = KafkaConsumer(kafka_settings.topic(topic),
                             bootstrap_servers=kafka_settings.bootstrap_servers,
                             auto_offset_reset="earliest", group_id=None,
                             enable_auto_commit=False, consumer_timeout_ms=500)
    found: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not found:
            for part in consumer.poll(timeout_ms=500).values():
                for record in part:
                    value = orjson.loads(record.value)
                    if record.key == brand.encode() and "tick" not in value:
                        found.append(value)
    finally:
        consumer.close()
    return found


def test_a_brand_added_while_the_worker_runs_is_scored_counted_and_routed(
        kafka_settings, worker_env, start_worker, tmp_path):
    with HttpStandIn() as hook:
        path = tmp_path / "watchlist.yaml"
        head = ("version: 1\nreceivers:\n"
                f'  ops-hook: {{type: webhook, url: "{hook.url()}", secret_env: T_HOOK}}\n'
                "brands:\n")
        path.write_text(head + ACME)
        first = version(path)
        env = {**worker_env, **FAST_ALERTS, "VIGIE_AGENTS": "score,detect,alert",
               "VIGIE_WATCHLIST": str(path), "T_HOOK": "hook-secret",
               "VIGIE_DETECT_INTERVAL_SECONDS": "2", "VIGIE_DETECT_TICK_SECONDS": "0.5"}
        worker = start_worker(env, wait_s=180)
        assert metric(worker.metrics_text(), "vigie_watchlist_info", version=first) == 1

        # A bad edit: counted, logged, and the worker keeps the last good version.
        path.write_text(head + ACME + NOVA.replace("name: Nova", "nmae: Nova"))
        wait_until(lambda: metric(worker.metrics_text(),
                                  "vigie_watchlist_reload_errors_total") == 1,
                   15, "the bad edit is counted")
        text = worker.metrics_text()
        assert metric(text, "vigie_watchlist_info", version=first) == 1
        assert metric(text, "vigie_watchlist_reload_failing") == 1
        assert "brands[1].nmae: unknown key 'nmae', did you mean 'name'?" in worker.log()

        # The fixed edit: a new brand, Nova, owned by the webhook.
        path.write_text(head + ACME + NOVA)
        second = version(path)
        seconds = wait_until(
            lambda: metric(worker.metrics_text(), "vigie_watchlist_info", version=second) == 1,
            15, "the new version is in use")
        print(f"new watchlist version in use after {seconds:.1f} s")
        assert metric(worker.metrics_text(), "vigie_watchlist_reload_failing") == 0

        # score matches it...
        producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
        producer.send(kafka_settings.topic("posts.valid"), key=b"twitter:n1", value=orjson.dumps(
            post("n1", "Nova Energie coupe le courant à tout le quartier, honteux")))
        producer.flush()
        producer.close()
        (mention,) = mentions_of(kafka_settings, "mentions.scored", "nova", timeout_s=60)
        assert mention["post_key"] == "twitter:n1"
        # ...detect counts it (its interval closes and is exported) instead of
        # dead-lettering it as an unknown brand...
        wait_until(lambda: metric(worker.metrics_text(), "vigie_brand_observed",
                                  brand="nova", measure="mentions") is not None,
                   30, "detect counts Nova's intervals")
        assert mentions_of(kafka_settings, "mentions.dlq", "nova", timeout_s=3) == []
        # ...and alert knows who owns it.
        send_incidents(kafka_settings, incident_event(
            incident_id="nova-20261201T1000Z", brand="nova", brand_name="Nova Energie",
            severity="warning"))
        (delivered,) = hook.wait_for(1, timeout=30)
        assert delivered.json()["brand"] == "nova"
