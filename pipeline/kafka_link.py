"""This process's link to Kafka: an outage is logged once when it starts, once when it
ends, and measured in between.

Kafka clients log every failed attempt: kafka-python (the producers) a few lines per
reconnect, aiokafka under Faust (the worker) several per agent, fetcher and coordinator
each time they retry; a worker wrote 8,000 ERROR lines/s during a 54 s broker outage.
Those lines say one thing, "Kafka is away", and bury everything else.

- `KafkaLink` is the one place that knows whether this process reaches Kafka. `lost()`
  logs the first sign of an outage with what the process is waiting for; `back()` logs
  its end with its length and how many client lines were held back. Both update the
  `vigie_kafka_*` metrics, so a dashboard shows the outage without reading logs.
- `KafkaClientLogGate` is a logging filter on the root handlers: the first warning of a
  Kafka client library that reads as a connection problem calls `lost()`; while the link
  is down every client line (info and above) is counted and kept out of the log.

Who says Kafka is back differs: a producer on its first acknowledgement
(`pipeline.producer`), the worker with `probe_until_back` (a metadata request every few
seconds while down; its consumer may have nothing to fetch and so nothing to prove it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.settings import KafkaSettings

__all__ = [
    "CLIENT_LOGGERS",
    "KafkaClientLogGate",
    "KafkaLink",
    "aiokafka_answers",
    "install_log_gate",
    "kafka_link",
    "probe_until_back",
]

log = logging.getLogger("vigie.kafka")

#: Loggers of the Kafka client libraries (and Faust's Kafka driver) whose warnings the
#: gate holds back during an outage.
CLIENT_LOGGERS: tuple[str, ...] = ("kafka", "aiokafka", "faust.transport")

#: Words of the client libraries' messages that mean "cannot reach the broker", lower case.
#: Answers of a broker that is there (coordinator not available yet, not the leader) are
#: not among them: a fresh broker gives those at start.
_CONNECTION_WORDS: tuple[str, ...] = (
    "unable connect",
    "connect call failed",
    "connection refused",
    "econnrefused",
    "connection lost",
    "connection reset",
    "socket disconnected",
    "broken pipe",
    "not ready",
    "nodenotready",
    "no node available",
    "unable to update metadata",
    "metadata refresh: failed",
    "unable to bootstrap",
    "kafkaconnectionerror",
    "nobrokersavailable",
    "failed fetch messages",
    "request timed out",
    "requesttimedout",
)


class KafkaLink:
    """Up, or down since a moment; every change logged once and counted."""

    def __init__(self, client: str, where: str) -> None:
        self.client = client
        self.where = where
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._held = 0
        self._connected, self._outages, self._outage_seconds, self._held_lines = _metrics(client)
        if self._connected is not None:
            self._connected.set(1)

    @property
    def down(self) -> bool:
        return self._down_since is not None

    @property
    def down_for(self) -> float:
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def lost(self, reason: str, waiting: str = "") -> None:
        """The first sign of an outage: log it (once) with what is waiting for Kafka."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self._held = 0
        if self._connected is not None:
            self._connected.set(0)
            self._outages.inc()
        log.warning(
            "%s: Kafka at %s does not answer (%s); waiting for it%s. Kafka client errors "
            "are held back until it is reachable.",
            self.client, self.where, _shorten(reason), f": {waiting}" if waiting else "",
        )

    def back(self, detail: str = "") -> None:
        """Kafka answered again: log the end of the outage (once) with its length."""
        with self._lock:
            if self._down_since is None:
                return
            seconds = time.monotonic() - self._down_since
            held = self._held
            self._down_since = None
        if self._connected is not None:
            self._connected.set(1)
            self._outage_seconds.inc(seconds)
        log.warning(
            "%s: Kafka at %s answers again after %.1f s%s (%d Kafka client log lines held "
            "back).",
            self.client, self.where, seconds, f"; {detail}" if detail else "", held,
        )

    def hold(self) -> None:
        """Count a client log line kept out of the log during the outage."""
        with self._lock:
            self._held += 1
        if self._held_lines is not None:
            self._held_lines.inc()


class KafkaClientLogGate(logging.Filter):
    """Keeps Kafka client warnings out of the log while `link` is down (see module doc)."""

    def __init__(self, link: KafkaLink) -> None:
        super().__init__()
        self.link = link

    def filter(self, record: logging.LogRecord) -> bool:
        # One verdict per record: with several handlers the first one's `lost()` must not
        # make the others drop the record that caused it.
        verdict = getattr(record, "_vigie_kafka_gate", None)
        if verdict is None:
            verdict = self._verdict(record)
            record._vigie_kafka_gate = verdict  # type: ignore[attr-defined]
        return verdict

    def _verdict(self, record: logging.LogRecord) -> bool:
        if not _is_client(record.name):
            return True
        if (
            record.levelno >= logging.WARNING
            and not self.link.down
            and _is_connection_problem(record)
        ):
            self.link.lost(_message(record))
        if self.link.down and record.levelno >= logging.INFO:
            # Reconnects and rejoins during the outage are the outage too.
            self.link.hold()
            return False
        return True


_LINK: KafkaLink | None = None
_LINK_LOCK = threading.Lock()


def kafka_link(client: str = "vigie", where: str = "") -> KafkaLink:
    """This process's link (created by the first caller, which names it) with its log
    gate installed on the root handlers."""
    global _LINK
    with _LINK_LOCK:
        if _LINK is None:
            _LINK = KafkaLink(client, where)
            install_log_gate(_LINK)
        return _LINK


def install_log_gate(link: KafkaLink, root: logging.Logger | None = None) -> None:
    """Add the gate to every handler of the root logger (a handler filter sees the records
    of every logger; a logger's own filter would miss its children's). With no handler
    configured, Python writes warnings through `logging.lastResort`: gate that one."""
    root = root or logging.getLogger()
    handlers = list(root.handlers) or [h for h in (logging.lastResort,) if h is not None]
    for handler in handlers:
        if not any(isinstance(f, KafkaClientLogGate) for f in handler.filters):
            handler.addFilter(KafkaClientLogGate(link))


async def probe_until_back(
    link: KafkaLink, answers: Callable[[], Awaitable[bool]], interval_s: float = 2.0
) -> None:
    """Forever: while the link is down, ask `answers()` every `interval_s`; mark it back
    on the first yes. Cheap while up (one flag read per interval)."""
    while True:
        await asyncio.sleep(interval_s)
        if not link.down:
            continue
        try:
            ok = await answers()
        except Exception:  # noqa: BLE001 - a failed probe is a "no"
            ok = False
        if ok:
            link.back()


async def aiokafka_answers(settings: KafkaSettings, timeout_s: float = 5.0) -> bool:
    """True when a broker answers a metadata request (a fresh aiokafka client, so that
    the probe does not depend on the state of the clients that saw the outage)."""
    from aiokafka import AIOKafkaClient

    from pipeline.kafka_clients import aiokafka_config

    client = AIOKafkaClient(**aiokafka_config(settings), client_id="vigie-kafka-probe",
                            request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        return True
    except Exception:  # noqa: BLE001 - any failure to bootstrap is a "no"
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _is_client(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in CLIENT_LOGGERS)


def _is_connection_problem(record: logging.LogRecord) -> bool:
    if record.exc_info and isinstance(record.exc_info[1], ConnectionError | TimeoutError):
        return True
    text = _message(record).lower()
    return any(word in text for word in _CONNECTION_WORDS)


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a malformed client log call must not break logging
        return str(record.msg)


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _metrics(client: str) -> tuple:
    # Metrics are plumbing: the link must work in a process where they cannot load.
    try:
        from pipeline import metrics
    except Exception:  # noqa: BLE001
        return None, None, None, None
    return (
        metrics.KAFKA_CONNECTED.labels(client=client),
        metrics.KAFKA_OUTAGES.labels(client=client),
        metrics.KAFKA_OUTAGE_SECONDS.labels(client=client),
        metrics.KAFKA_CLIENT_LOG_LINES_HELD.labels(client=client),
    )
