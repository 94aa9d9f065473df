"""The verdict behind /live: a stalled loop or a stuck consumer fails; a slow one does not."""

from __future__ import annotations

from pipeline.liveness import Liveness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def probe(clock: Clock) -> Liveness:
    return Liveness(loop_stall_s=30, consumer_stall_s=300, clock=clock)


def test_a_stalled_event_loop_fails():
    clock = Clock()
    live = probe(clock)
    clock.now += 20
    live.beat()
    assert live.verdict() == (True, "alive")
    clock.now += 31
    assert live.verdict() == (False, "event loop stalled: last heartbeat 31 s ago")


def test_records_waiting_without_progress_fail_but_a_slow_backlog_does_not():
    clock = Clock()
    live = probe(clock)
    for _ in range(10):  # a backlog worked through slowly: the commit moves every minute
        clock.now += 60
        live.beat()
        live.observe({("posts.valid", 0): int(clock.now)}, {("posts.valid", 0): 10**9})
    assert live.verdict() == (True, "alive")
    for _ in range(7):  # then the commit stops at 1 while records wait (6 min after)
        clock.now += 60
        live.beat()
        live.observe({("posts.valid", 0): 1}, {("posts.valid", 0): 10**9})
    alive, reason = live.verdict()
    assert not alive and reason.startswith("consumer stuck: records wait on posts.valid[0]")


def test_a_caught_up_or_rebalancing_consumer_is_not_stuck():
    clock = Clock()
    live = probe(clock)
    for _ in range(10):
        clock.now += 60
        live.beat()
        live.observe({("incidents", 1): 5}, {("incidents", 1): 5})  # nothing to read
    assert live.verdict() == (True, "alive")
    for _ in range(10):
        clock.now += 60
        live.beat()
        live.observe({("incidents", 1): 5}, {("incidents", 1): 9}, rebalancing=True)
    assert live.verdict() == (True, "alive")


def test_a_consumer_that_stops_answering_fails():
    clock = Clock()
    live = probe(clock)
    live.observe({}, {})
    for _ in range(31):
        clock.now += 10
        live.beat()
    assert live.verdict() == (False, "consumer not answering: last offset reading 310 s ago")


def test_the_time_before_the_worker_started_is_not_a_stall():
    clock = Clock()
    live = probe(clock)
    clock.now += 600  # the sentiment model loading, before the app's tasks run
    assert not live.verdict()[0]
    live.restart()
    assert live.verdict() == (True, "alive")


def test_a_stuck_validate_loop_fails_although_the_faust_consumer_moves():
    clock = Clock()
    live = probe(clock)
    live.watch("validate")
    for step in range(7):
        clock.now += 60
        live.beat()
        live.observe({("posts.valid", 0): step}, {("posts.valid", 0): 10**9})
        live.observe({("posts.raw", 0): 5}, {("posts.raw", 0): 10**9}, source="validate")
    alive, reason = live.verdict()
    assert not alive and "posts.raw[0]" in reason


def test_a_validate_loop_that_gives_no_reading_fails():
    clock = Clock()
    live = probe(clock)
    live.watch("validate")
    for _ in range(6):
        clock.now += 60
        live.beat()
        live.observe({}, {})
    assert live.verdict() == (False, "validate consumer not answering: last offset reading "
                                     "360 s ago")
