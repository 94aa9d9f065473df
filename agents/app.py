"""The Faust app: settings from the environment, topics, and one module per agent.

Each agent module (validate, score, detect, alert) defines
`register(context: AgentContext) -> None`, which declares its agents, tables and timers on
`context.app`. Scale-out is Kafka's: run more
workers with the same VIGIE_APP_ID (one consumer group) and Kafka spreads partitions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

import faust
from aiohttp.web import Response

from agents.topics import Topics, declare_topics
from agents.transport import VigieApp
from pipeline import metrics
from pipeline.kafka_clients import faust_credentials
from pipeline.limits import MAX_MESSAGE_BYTES
from pipeline.liveness import Liveness
from pipeline.settings import AGENT_NAMES, KafkaSettings, WorkerSettings
from pipeline.watchlist_watch import CHECK_INTERVAL_S as WATCHLIST_CHECK_INTERVAL_S
from pipeline.watchlist_watch import WatchlistWatcher

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class AgentContext:
    app: faust.App
    kafka: KafkaSettings
    worker: WorkerSettings
    topics: Topics
    # The one current watchlist of this worker: every agent reads it here, and agents that
    # derive state from it register `watchlist.on_change` callbacks.
    watchlist: WatchlistWatcher
    # What /live judges: a stage with its own consumer (validate) reports to it too.
    liveness: Liveness


def create_app(
    kafka: KafkaSettings | None = None, worker: WorkerSettings | None = None
) -> tuple[faust.App, AgentContext]:
    kafka = kafka or KafkaSettings.from_env()
    worker = worker or WorkerSettings.from_env()
    worker.state_dir.mkdir(parents=True, exist_ok=True)
    watchlist = WatchlistWatcher(worker.watchlist)  # a bad file stops here, before Kafka
    app = VigieApp(
        worker.app_id,
        broker=[f"kafka://{server.strip()}" for server in kafka.bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(kafka),
        store=worker.store,
        datadir=str(worker.state_dir),
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        # A worker started after the producers must still see their posts.
        consumer_auto_offset_reset="earliest",
        # At least once, with ids that make a redelivery harmless downstream. (Faust's
        # exactly_once mode was tried with these agents: after a SIGKILL every post came
        # out twice on posts.valid, read committed, so it is not offered.)
        processing_guarantee="at_least_once",
        # How long the group waits for a silent (crashed) worker before handing its
        # partitions to the others: short enough that a restart resumes quickly.
        broker_session_timeout=worker.session_timeout_s,
        broker_heartbeat_interval=2.0,
        web_port=worker.web_port,
        web_bind=worker.web_bind,
        web_in_thread=False,
        producer_acks=-1,
        producer_compression_type="lz4",
        # Without lingering, aiokafka sends one tiny request per record and spends the
        # worker's time in socket writes; 20 ms fills batches at no visible latency.
        producer_linger_ms=20,
        producer_max_batch_size=262_144,
        # Faust's default (1,000,000) is below what Vigie's topics take; one limit for
        # every producer and topic (pipeline/limits.py).
        producer_max_request_size=MAX_MESSAGE_BYTES,
        broker_max_poll_records=2000,
        # A topic missing from the metadata when the group formed (a broker that just
        # restarted) is noticed at the next refresh: 30 s rather than aiokafka's 5 min.
        consumer_metadata_max_age_ms=30_000,
        stream_buffer_maxsize=8192,
    )
    liveness = Liveness(worker.live_loop_stall_s, worker.live_consumer_stall_s)
    context = AgentContext(app, kafka, worker, declare_topics(app, kafka), watchlist, liveness)

    @app.page("/metrics")
    async def metrics_page(_web: object, _request: object) -> Response:
        body, content_type = metrics.exposition()
        return Response(body=body, headers={"Content-Type": content_type})

    @app.page("/live")
    async def live_page(_web: object, _request: object) -> Response:
        # The liveness probe: served on the event loop, so a hung loop times it out; a
        # stalled loop or a stuck consumer answers 503 with the reason (pipeline/liveness).
        alive, reason = liveness.verdict()
        return Response(text=reason, status=200 if alive else 503)

    @app.page("/ready")
    async def ready_page(_web: object, _request: object) -> Response:
        # Ready once this worker has its partitions and has recovered its tables.
        ready = app.rebalancing is False and app.tables.recovery.completed.is_set()
        return Response(text="ready" if ready else "starting", status=200 if ready else 503)

    @app.timer(interval=WATCHLIST_CHECK_INTERVAL_S)
    async def reload_watchlist() -> None:
        # On the event loop, between records: no agent sees half of a reload.
        watchlist.check()

    @app.task
    async def heartbeat() -> None:
        liveness.restart()  # the clocks start with the worker, not before the model loaded
        while True:
            liveness.beat()
            await asyncio.sleep(1.0)

    @app.task
    async def consumer_lag() -> None:
        await metrics.faust_consumer_lag_task(
            app, interval=10.0,
            on_offsets=lambda committed, ends: liveness.observe(
                committed, ends, rebalancing=bool(app.rebalancing)))

    for register in enabled_agents(worker):
        register(context)
    return app, context


def enabled_agents(worker: WorkerSettings) -> list[Callable[[AgentContext], None]]:
    """The `register` steps of the agents this worker runs (VIGIE_AGENTS), in pipeline order."""
    # Imported here, not at the top: each agent module imports AgentContext from this one.
    from agents import alert, detect, score, validate

    steps = {"validate": validate.register, "score": score.register,
             "detect": detect.register, "alert": alert.register}
    assert set(steps) == set(AGENT_NAMES)
    return [steps[name] for name in AGENT_NAMES if name in worker.agents]
