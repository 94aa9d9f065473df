"""An outage is logged once when it starts and once when it ends, and measured."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import REGISTRY

from pipeline.kafka_link import KafkaLink, install_log_gate, probe_until_back


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


def value(name: str, client: str) -> float:
    return REGISTRY.get_sample_value(name, {"client": client}) or 0.0


def gated(client: str) -> tuple[KafkaLink, logging.Logger, Lines, Lines]:
    """A root-like logger with two handlers, both gated, as the worker's root has."""
    root = logging.Logger(f"root-{client}", logging.DEBUG)
    first, second = Lines(), Lines()
    root.addHandler(first)
    root.addHandler(second)
    link = KafkaLink(client, "127.0.0.1:9")
    install_log_gate(link, root)
    logging.getLogger("vigie.kafka").addHandler(first)  # the link's own two lines
    return link, root, first, second


def client_record(root: logging.Logger, name: str, level: int, message: str) -> None:
    root.handle(logging.LogRecord(name, level, __file__, 1, message, None, None))


def test_a_flood_of_connection_errors_becomes_one_line_and_a_count() -> None:
    link, root, first, second = gated("unit-flood")
    try:
        client_record(root, "aiokafka.consumer.group_coordinator", logging.WARNING,
                      "Heartbeat failed: rebalancing")  # not a connection problem: shown
        for _ in range(500):
            client_record(root, "aiokafka.client", logging.ERROR,
                          "Unable connect to node with id 1: [Errno 111] Connect call failed")
            client_record(root, "aiokafka.consumer.fetcher", logging.ERROR,
                          "Failed fetch messages from 1: NodeNotReadyError")
            client_record(root, "aiokafka.consumer.group_coordinator", logging.INFO,
                          "(Re-)joining group vigie")
        client_record(root, "vigie.alert", logging.ERROR, "our own error")  # never held

        assert link.down
        assert value("vigie_kafka_connected", "unit-flood") == 0
        assert value("vigie_kafka_outages_total", "unit-flood") == 1
        assert value("vigie_kafka_client_log_lines_held_total", "unit-flood") == 1500
        link.back()
        link.back()  # a second "back" says nothing more
        assert value("vigie_kafka_connected", "unit-flood") == 1
        assert value("vigie_kafka_outage_seconds_total", "unit-flood") > 0
    finally:
        logging.getLogger("vigie.kafka").removeHandler(first)
    # Both handlers agree on each record (the first one's verdict is not the second's).
    client_lines = [line for line in second.lines if line.startswith("aiokafka")]
    assert client_lines == ["aiokafka.consumer.group_coordinator: Heartbeat failed: rebalancing"]
    assert "vigie.alert: our own error" in second.lines
    ours = [line for line in first.lines if line.startswith("vigie.kafka")]
    assert len(ours) == 2
    assert "does not answer" in ours[0] and "Connect call failed" in ours[0]
    assert "answers again" in ours[1] and "1500 Kafka client log lines held back" in ours[1]


def test_kafka_python_lines_are_gated_too_and_a_new_outage_is_logged_again() -> None:
    link, root, first, _ = gated("unit-again")
    try:
        for _ in range(2):
            for _ in range(20):
                client_record(root, "kafka.net.connection", logging.ERROR,
                              "Connection lost: KafkaConnectionError: 111 ECONNREFUSED")
            link.back()
    finally:
        logging.getLogger("vigie.kafka").removeHandler(first)
    ours = [line for line in first.lines if line.startswith("vigie.kafka")]
    assert [("does not answer" in line, "answers again" in line) for line in ours] == [
        (True, False), (False, True), (True, False), (False, True)]
    assert not [line for line in first.lines if line.startswith("kafka.")]
    assert value("vigie_kafka_outages_total", "unit-again") == 2


def test_the_probe_marks_the_link_back_on_the_first_yes() -> None:
    link = KafkaLink("unit-probe", "127.0.0.1:9")
    link.lost("test")
    answers = iter([False, False, True])
    asked: list[bool] = []

    async def probe() -> bool:
        asked.append(True)
        return next(answers)

    async def scenario() -> None:
        task = asyncio.create_task(probe_until_back(link, probe, interval_s=0.01))
        for _ in range(200):
            if not link.down:
                break
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(scenario())
    assert not link.down and len(asked) == 3
