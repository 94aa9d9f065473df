"""The `alert` agent: incidents -> Slack, email, webhook, PagerDuty (alerts.log, alerts.dlq).

Thin on purpose: the decisions are in `pipeline.notify.policy` (pure) and the I/O in
`pipeline.notify.service`. This module wires them to Faust: the agent records each
incident event (the offset is committed after the state is written), a timer runs the
policy every VIGIE_ALERT_TICK_S for the partitions this worker owns, and a revocation
lets in-flight notifications finish so the next owner sees them done (sends that last
longer stay covered by their claims in alerts.ledger).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson

from agents.app import AgentContext
from pipeline.notify.base import NotificationError
from pipeline.notify.config import build_receiver
from pipeline.notify.render import Message
from pipeline.notify.service import AlertService
from pipeline.notify.settings import AlertSettings
from pipeline.topics import INCIDENTS
from pipeline.watchlist import Owner, Watchlist, WatchlistError

log = logging.getLogger("vigie.alert")


class MisconfiguredReceiver:
    """Stands in for a receiver whose watchlist entry is unusable (e.g. a missing secret).

    The worker still starts (one bad receiver must not stop the whole pipeline); every
    notification for it fails at once into alerts.dlq with the configuration error.
    """

    def __init__(self, name: str, kind: str, error: WatchlistError) -> None:
        self.name, self.type, self.error = name, kind, str(error)

    @property
    def rate_limit_key(self) -> None:
        return None

    def secrets(self) -> tuple[str, ...]:
        return ()

    async def send(self, message: Message, http: Any) -> int:
        raise NotificationError(f"receiver misconfigured: {self.error}", retryable=False)


def routing(watchlist: Watchlist, settings: AlertSettings
            ) -> tuple[dict[str, tuple[Owner, ...]], dict[str, Any]]:
    """Each brand's owners, and a receiver for each watchlist entry (a stand-in that
    dead-letters everything for an entry that cannot be built)."""
    receivers: dict[str, Any] = {}
    for name, spec in watchlist.receivers.items():
        try:
            receivers[name] = build_receiver(spec, settings)
        except WatchlistError as exc:
            log.error("receiver %s unusable, its notifications will be dead letters: %s",
                      name, exc)
            receivers[name] = MisconfiguredReceiver(name, spec.type, exc)
    return {brand.id: brand.owners for brand in watchlist.brands.values()}, receivers


def timezones(watchlist: Watchlist) -> dict[tuple[str, str], str]:
    """(brand id, receiver) -> the time zone its readers read times in (owner's or brand's)."""
    return {(brand.id, receiver): brand.timezone_for(receiver)
            for brand in watchlist.brands.values()
            for owner in brand.owners for receiver in owner.receivers}


def register(context: AgentContext) -> None:
    app, topics = context.app, context.topics
    settings = AlertSettings.from_env()
    service = AlertService(*routing(context.watchlist.watchlist, settings), settings,
                           context.kafka, timezones=timezones(context.watchlist.watchlist))

    def reload(watchlist: Watchlist) -> None:
        service.update_routing(*routing(watchlist, settings))
        service.timezones = timezones(watchlist)

    # A new watchlist version: new brands' owners and changed receivers apply to the next
    # notification planned (one in flight finishes with the receiver it started with).
    context.watchlist.on_change(reload)
    ready = asyncio.Event()
    incidents_topic = context.kafka.topic(INCIDENTS)
    # A revocation must finish well within the session timeout, or the group evicts us.
    drain_limit_s = app.conf.broker_session_timeout * 0.8

    @app.agent(topics.incidents, name="alert")
    async def alert(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await ready.wait()
            try:
                value: Any = orjson.loads(event.value)
            except orjson.JSONDecodeError:
                value = event.value  # handle_incident dead-letters it with the reason
            await service.handle_incident(value, partition=event.message.partition)

    @app.timer(interval=settings.tick_s)
    async def alert_tick() -> None:
        if not ready.is_set() or app.rebalancing:
            return
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == incidents_topic}
        try:
            await service.tick(assigned)
        except Exception as exc:  # noqa: BLE001 - a slow broker must not stop the timer
            log.warning("alert tick skipped: %s: %s", type(exc).__name__, exc)

    @app.on_partitions_revoked.connect
    async def hand_over(app: faust.App, revoked: set[Any], **kwargs: Any) -> None:
        partitions = {tp.partition for tp in revoked if tp.topic == incidents_topic}
        if partitions and ready.is_set():
            await service.drain(partitions, timeout_s=drain_limit_s)

    @app.service
    class AlertLifecycle(faust.Service):
        """Starts with the app (views read, clients open) and stops with it."""

        async def on_start(self) -> None:
            await service.start()
            ready.set()

        async def on_stop(self) -> None:
            if ready.is_set():
                await service.stop()
