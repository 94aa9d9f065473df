"""A real Prometheus scrapes a real worker and a real producer; its counters match the posts.

Prometheus is Debian's `/usr/bin/prometheus` (package `prometheus`) with a temporary
config and storage on a free loopback port, scraping every second, with Vigie's own
recording rules loaded. The producer is this test process (a PostProducer with the
prometheus-client server of `pipeline.metrics`); the worker is `vigie worker` as a
subprocess, exposing /metrics on its Faust web port. Everything is asserted through
Prometheus's HTTP API, as an operator's dashboard would see it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline import metrics
from pipeline.producer import PostProducer
from tests.unit.test_deploy_observability import dashboard_expressions, grafana_substituted

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}")
        payload = json.loads(body)
        assert status == 200 and payload["status"] == "success", (path, params, payload)
        return payload["data"]

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant query -> {sorted label pairs (without __name__): value}."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return {
            tuple(sorted((k, v) for k, v in sample["metric"].items() if k != "__name__")): float(
                sample["value"][1]
            )
            for sample in data["result"]
        }

    def value(self, expr: str) -> float | None:
        """The value of a query expected to return at most one series."""
        result = self.query(expr)
        assert len(result) <= 1, (expr, result)
        return next(iter(result.values()), None)

    def wait_for(self, expr: str, expected: Callable[[Any], bool], timeout: float = 60.0) -> Any:
        """Poll until `expected(result)`; fail with the last result seen."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if expected(result):
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"{expr}: still {result} after {timeout:.0f} s")
            time.sleep(0.5)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, list[str]]], Prometheus]]:
    """start(targets by job name) -> a running Prometheus scraping them every second."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert Path(binary).exists(), "prometheus is missing: apt-get install prometheus"
    started: list[subprocess.Popen[bytes]] = []

    def start(targets: dict[str, list[str]]) -> Prometheus:
        config = {
            "global": {
                "scrape_interval": "1s",
                "evaluation_interval": "1s",
                "scrape_timeout": "900ms",
            },
            "rule_files": [str(path) for path in sorted(RULES.glob("*.yml"))],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addresses}]}
                for job, addresses in targets.items()
            ],
        }
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        port = free_port()
        log = tmp_path / "prometheus.log"
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        started.append(process)
        server = Prometheus(f"http://127.0.0.1:{port}", process, log)
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"prometheus exited:\n{log.read_text()}"
            try:
                if http_get(f"{server.url}/-/ready", timeout=1)[0] == 200:
                    return server
            except OSError:
                pass
            assert time.monotonic() < deadline, f"prometheus not ready:\n{log.read_text()}"
            time.sleep(0.2)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_post(number: int, run: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "platform": "forum",
        "id": f"{run}-{number}",
        "url": f"https://forum.example/t/{run}/{number}",
        "author": {"handle": f"user{number}", "followers": 10 * number},
        "text": f"Post {number} of a Prometheus test run: Orange is down again.",
        "language": "en",
        "created_at": datetime.now(UTC).isoformat(),
        "engagement": {"likes": number},
    }


def test_prometheus_sees_what_was_sent(
    prometheus: Callable[[dict[str, list[str]]], Prometheus],
    kafka_settings: Any,
    worker_env: dict[str, str],
    start_worker: Callable[[dict[str, str]], Any],
) -> None:
    valid, duplicates = 12, 3
    # Invalid by reason, as the validate stage counts them.
    invalid = {
        "bad_json": [b"{not json", b"[1, 2"],
        "invalid_fields": [b"{}", b'{"a": 1}', b'{"platform": 3}'],
    }
    run = uuid.uuid4().hex[:8]
    source = f"promtest-{run}"  # this process's registry is shared: a label of our own

    web_port = free_port()
    metrics_port = free_port()
    env = dict(worker_env, VIGIE_WEB_PORT=str(web_port), VIGIE_WEB_BIND="127.0.0.1")
    start_worker(env)
    assert metrics.start_http_server(metrics_port, addr="127.0.0.1") == metrics_port

    server = prometheus(
        {"vigie-worker": [f"127.0.0.1:{web_port}"], "vigie-producer": [f"127.0.0.1:{metrics_port}"]}
    )
    server.wait_for('up{job=~"vigie-worker|vigie-producer"} == 1', lambda r: len(r) == 2)

    posts = [make_post(number, run) for number in range(valid)]
    with PostProducer(kafka_settings, source=source) as producer:
        for post in posts:
            producer.send(post)
        for post in posts[:duplicates]:  # a source resending after a reconnect
            producer.send(post)
        for reason, values in invalid.items():
            for index, value in enumerate(values):
                producer.send_raw(f"forum:{run}-{reason}-{index}", value)
    sent = valid + duplicates + sum(map(len, invalid.values()))
    assert producer.delivered == sent and producer.failed == 0

    # The producer's own counters, as scraped from this process.
    produced = f'vigie_posts_produced_total{{job="vigie-producer", source="{source}"}}'
    server.wait_for(produced, lambda r: list(r.values()) == [sent])
    failed = f'vigie_posts_produce_failed_total{{job="vigie-producer", source="{source}"}}'
    assert server.value(failed) == 0

    # The worker's validation counters: each post counted once, in the right place. Every
    # copy passes validation; the score stage drops the copies of a post it has seen.
    server.wait_for(
        'vigie_posts_valid_total{job="vigie-worker"}',
        lambda r: list(r.values()) == [valid + duplicates],
    )
    server.wait_for(
        'vigie_posts_duplicate_total{job="vigie-worker"}',
        lambda r: list(r.values()) == [duplicates],
    )
    by_reason = server.wait_for(
        'sum by (reason) (vigie_posts_invalid_total{job="vigie-worker"})',
        lambda r: sum(r.values()) == sum(map(len, invalid.values())),
    )
    assert {dict(labels)["reason"]: value for labels, value in by_reason.items()} == {
        reason: len(values) for reason, values in invalid.items()
    }

    # Consumer lag of the raw topic comes back to zero once the worker has committed.
    raw_topic = kafka_settings.topic("posts.raw")
    server.wait_for(
        f'vigie_consumer_lag_messages{{job="vigie-worker", topic="{raw_topic}"}}',
        lambda r: list(r.values()) == [0],
        timeout=60,
    )

    # Vigie's recording rules run on the real series: every expression executes, and the
    # ingestion ones already have data (the dashboards read them).
    groups = yaml.safe_load((RULES / "recording.yml").read_text())["groups"]
    for rule in (rule for group in groups for rule in group["rules"]):
        server.query(rule["expr"])  # fails on an execution error
        if rule["record"] in ("vigie:posts_valid:rate1m", "vigie:posts_produced:rate1m"):
            # A rate needs two scrapes of the series.
            server.wait_for(rule["expr"], lambda r: len(r) >= 1, timeout=15)
    loaded = {rule["name"] for group in server.api("rules")["groups"] for rule in group["rules"]}
    assert "VigieWorkerDown" in loaded and "vigie:posts_valid:rate1m" in loaded

    # Every dashboard query runs on the real data; the pipeline panels show this run.
    for _where, expr in dashboard_expressions():
        server.query(grafana_substituted(expr))  # fails on an execution error
    validation = server.query('sum(increase(vigie_posts_valid_total{job="vigie-worker"}[1h]))')
    assert list(validation.values()) and list(validation.values())[0] >= valid * 0.9
