"""`vigie demo`: the whole pipeline on the local Kafka, with a scripted wikirévélation.

What it does, so that a newcomer sees every stage work:
1. makes sure the local broker runs and the default sentiment model is built;
2. starts a local mail sink and webhook receiver (the demo watchlist's receivers) and a
   worker (validate, score, detect, alert) on topics of their own (`demo-<time>.`);
3. replays six hours of ordinary French/English chatter about four brands as fast as it
   can, so that the detector learns what normal looks like;
4. then plays a leak about "Lumio Energie" at 60x real time: one post, reshares,
   influencers, thousands of negative posts within minutes;
5. prints the incidents as the detector opens, updates and resolves them, and the alerts
   as the mail sink and webhook receive them, then a summary.
The broker keeps running afterwards (`make kafka-stop` stops it).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson
from kafka import KafkaConsumer

from pipeline.cli.ingest import brand_profiles
from pipeline.generator import Generator, Scenario
from pipeline.kafka_local import KafkaLocalError, LocalKafka
from pipeline.notify.render import build_message, storyline_sentence
from pipeline.producer import PostProducer
from pipeline.replay import Pacer
from pipeline.settings import KafkaSettings, project_root
from pipeline.topics import INCIDENTS, MENTIONS_SCORED, POSTS_DLQ, POSTS_VALID
from pipeline.worker_ready import WorkerNotReady, wait_until_ready

WARMUP_MINUTES = 360
CRISIS_BRAND = "lumio"
CRISIS_MINUTES = 40
AFTER_MINUTES = 50
SPEED = 60.0


def _say(text: str) -> None:
    click.secho(f"==> {text}", fg="cyan", bold=True)


def _vigie() -> list[str]:
    script = Path(sys.executable).parent / "vigie"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


def _wait_ready(port: int, process: subprocess.Popen[bytes], log: Path, wait_s: float) -> None:
    try:
        wait_until_ready(port, process, wait_s)
    except WorkerNotReady as exc:
        raise click.ClickException(f"{exc}; its log: {log}") from None


def _tail_incidents(kafka: KafkaSettings, stop: threading.Event, seen: list[dict]) -> None:
    consumer = KafkaConsumer(kafka.topic(INCIDENTS), **kafka.kafka_python_config(),
                             auto_offset_reset="earliest", group_id=None)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    event = orjson.loads(record.value)
                    seen.append(event)
                    colour = {"critical": "red", "warning": "yellow"}.get(event["severity"])
                    click.secho(f"    incident {event['event']:<8} {event['incident_id']} "
                                f"[{event['severity']}] {event['summary']}", fg=colour)
                    if event["event"] != "resolved":
                        message = build_message(event, "opened", "demo", grafana_url="")
                        line = storyline_sentence(message)
                        if line:
                            click.echo(f"        {line}")
    finally:
        consumer.close()


def _count(kafka: KafkaSettings, topic: str) -> int:
    """Records on a topic, the detector's clock ticks left out."""
    consumer = KafkaConsumer(kafka.topic(topic), **kafka.kafka_python_config(),
                             auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=1500)
    try:
        return sum(1 for record in consumer if b'"tick"' not in record.value[:40])
    finally:
        consumer.close()


@click.command(name="demo")
@click.option("--web-port", default=6066, show_default=True,
              help="The worker's /metrics port (its VIGIE_WEB_PORT).")
@click.option("--seed", default=7, show_default=True)
def command(web_port: int, seed: int) -> None:
    """Run the whole pipeline on the local Kafka with a scripted crisis, until alerts appear."""
    root = project_root()
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    folder = root / ".state" / "demo" / stamp
    folder.mkdir(parents=True, exist_ok=True)

    _say("Kafka")
    try:
        broker = LocalKafka.from_env()
        broker.start()
    except KafkaLocalError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"    broker on {broker.bootstrap}")

    _say("Sentiment model")
    from models.sentiment import ensure_default_model
    from pipeline.sentiment_settings import SentimentSettings

    click.echo(f"    {ensure_default_model(SentimentSettings.from_env().model_dir)}")

    prefix = f"demo-{stamp}."
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=prefix)
    env = {
        **os.environ,
        "VIGIE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "VIGIE_TOPIC_PREFIX": prefix,
        "VIGIE_APP_ID": prefix.rstrip("."),
        "VIGIE_STATE_DIR": str(folder / "worker"),
        "VIGIE_WEB_PORT": str(web_port),
        "VIGIE_WATCHLIST": str(root / "config" / "watchlist.yaml"),
        "VIGIE_DETECT_QUIET_MINUTES": "30",
        "VIGIE_ALERT_GROUP_WAIT_S": "3",
        "VIGIE_DEMO_WEBHOOK_SECRET": secrets.token_hex(16),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    alerts_file = folder / "alerts.jsonl"
    worker_log = folder / "worker.log"
    processes: list[subprocess.Popen[bytes]] = []
    stop = threading.Event()
    incidents: list[dict] = []
    try:
        _say("Alert receivers: mail sink on 127.0.0.1:8025, webhook on 127.0.0.1:8765")
        processes.append(subprocess.Popen(
            [*_vigie(), "alert", "sink", "--smtp-port", "8025", "--webhook-port", "8765",
             "--out", str(alerts_file)], env=env))
        _say(f"Worker (validate, score, detect, alert); log: {worker_log}")
        with open(worker_log, "wb") as log:
            worker = subprocess.Popen([*_vigie(), "worker"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
        processes.append(worker)
        _wait_ready(web_port, worker, worker_log, wait_s=180)
        threading.Thread(target=_tail_incidents, args=(kafka, stop, incidents),
                         daemon=True).start()

        profiles = brand_profiles(root / "config" / "watchlist.yaml", base_rate=3.0)
        total = WARMUP_MINUTES + CRISIS_MINUTES + AFTER_MINUTES
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=total)
        leak = Scenario("wikirevelation", CRISIS_BRAND, WARMUP_MINUTES, CRISIS_MINUTES, 300)
        generator = Generator(profiles, start, seed=seed, scenarios=[leak])
        crisis_at = start + timedelta(minutes=WARMUP_MINUTES)
        _say(f"Six hours of ordinary chatter about {len(profiles)} brands (warm-up)")
        with PostProducer(kafka, source="demo") as producer:
            pacer: Pacer | None = None
            announced = False
            for post in generator.posts(total):
                moment = datetime.fromisoformat(post["created_at"])
                if moment >= crisis_at:
                    if not announced:
                        producer.flush()
                        _say(f"A leak about Lumio Energie starts at {crisis_at:%H:%M} UTC "
                             f"(played at {SPEED:.0f}x real time)")
                        announced = True
                        pacer = Pacer(speed=SPEED)
                    pacer.wait(moment)
                producer.send(post)
        click.echo(f"    {producer.delivered} posts delivered, {producer.failed} failed")

        _say("Waiting for the alerts to arrive")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            received = alerts_file.read_text().splitlines() if alerts_file.exists() else []
            if any('"resolved"' in line for line in received):
                break
            time.sleep(1)
        time.sleep(2)
    finally:
        stop.set()
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()

    received = alerts_file.read_text().splitlines() if alerts_file.exists() else []
    _say("Summary")
    click.echo(f"    posts valid: {_count(kafka, POSTS_VALID)}, "
               f"dead letters: {_count(kafka, POSTS_DLQ)}, "
               f"mentions scored: {_count(kafka, MENTIONS_SCORED)}")
    click.echo(f"    incident events: {len(incidents)}, alerts received: {len(received)} "
               f"(saved in {alerts_file})")
    click.echo(f"    topics: {prefix}*, worker log: {worker_log}")
    if not received:
        raise click.ClickException("no alert arrived: see the worker log above")
