"""The source framework's pure parts: backoff, rate-limit headers, resume state, dedup, runner."""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pipeline.sources.base import (
    Backoff,
    BackoffPolicy,
    Connector,
    DeliveryPending,
    FatalSourceError,
    RateLimited,
    RecentKeys,
    RunnerSettings,
    SourceItem,
    SourceRunner,
    StateStore,
    TransientSourceError,
    deep_merge,
    retry_after_seconds,
)
from pipeline.sources.sinks import MemorySink
from pipeline.sources.text import html_to_text, iso_from_text
from pipeline.sources.twitter import XConnector

NOW = 1_800_000_000.0


def test_exponential_backoff_is_capped_and_linear_policy_grows_by_steps() -> None:
    policy = BackoffPolicy(5.0, 320.0)
    assert [policy.delay(n) for n in range(0, 9)] == [0, 5, 10, 20, 40, 80, 160, 320, 320]
    network = XConnector.policies["network"]  # the X stream's documented 250 ms steps to 16 s
    assert [network.delay(n) for n in (1, 2, 3, 64, 65, 200)] == [0.25, 0.5, 0.75, 16.0, 16.0, 16.0]


def test_jitter_keeps_half_of_the_delay_and_randomises_the_rest() -> None:
    backoff = Backoff({"network": BackoffPolicy(2.0, 60.0)}, rng=random.Random(7))
    delays = [backoff.next_delay("network") for _ in range(4)]
    bases = [2.0, 4.0, 8.0, 16.0]
    assert all(base / 2 <= d <= base for d, base in zip(delays, bases, strict=True))
    assert len({d / b for d, b in zip(delays, bases, strict=True)}) > 1
    backoff.reset()
    assert backoff.next_delay("unknown-kind") <= 2.0  # falls back to the network policy


def test_retry_after_in_every_platform_dialect() -> None:
    assert retry_after_seconds({"Retry-After": "120"}, NOW) == 120
    http_date = formatdate(NOW + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": http_date}, NOW) == pytest.approx(30, abs=1)
    # X: Unix time of the reset
    assert retry_after_seconds({"x-rate-limit-reset": str(int(NOW + 900))}, NOW) == 900
    # Reddit: seconds until the end of the period
    assert retry_after_seconds({"X-Ratelimit-Reset": "42"}, NOW) == 42
    # Mastodon: an ISO 8601 time
    eight = datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()
    mastodon = {"X-RateLimit-Reset": "2027-01-15T08:00:10.000Z"}
    assert retry_after_seconds(mastodon, eight) == pytest.approx(10)
    assert retry_after_seconds({"x-rate-limit-reset": str(int(NOW - 5))}, NOW) == 0
    assert retry_after_seconds({"Content-Type": "text/plain"}, NOW) is None
    assert retry_after_seconds({"Retry-After": "soon"}, NOW) is None


def test_recent_keys_forget_the_oldest_first() -> None:
    recent = RecentKeys(3, ["a", "b"])
    recent.add("c")
    recent.add("a")  # seen again: becomes the newest
    recent.add("d")
    assert recent.snapshot() == ["c", "a", "d"]
    assert "b" not in recent and "a" in recent


def test_state_store_round_trip_and_a_corrupt_file_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "sub" / "x.json")
    assert store.load() == {"cursor": {}, "recent_keys": []}
    store.save({"cursor": {"time_us": 5}, "recent_keys": ["bluesky:1"]})
    assert store.load()["cursor"] == {"time_us": 5}
    assert not list((tmp_path / "sub").glob("*.tmp"))
    store.path.write_text('{"cursor": ')
    with pytest.raises(FatalSourceError, match=r"x\.json: the resume state is not valid JSON"):
        store.load()


def test_overlapping_saves_never_fail_and_leave_one_whole_snapshot(tmp_path: Path) -> None:
    # A periodic save cancelled at shutdown keeps running in its thread while the final
    # save starts (CI once failed on this: the first rename took the second's temp file).
    store = StateStore(tmp_path / "bluesky.json")
    errors: list[BaseException] = []

    def save_many(writer: int) -> None:
        try:
            for round_ in range(40):
                store.save({"cursor": {"writer": writer, "round": round_}, "recent_keys": []})
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=save_many, args=(writer,)) for writer in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.load()["cursor"]["round"] == 39
    assert not list(tmp_path.glob("*.tmp"))


def test_deep_merge_merges_dicts_and_replaces_the_rest() -> None:
    state: dict[str, Any] = {"feeds": {"a": {"etag": "1", "seen": ["x"]}}, "n": 1}
    deep_merge(state, {"feeds": {"a": {"seen": ["y"]}, "b": {"etag": "2"}}, "n": 2})
    assert state == {"feeds": {"a": {"etag": "1", "seen": ["y"]}, "b": {"etag": "2"}}, "n": 2}


def test_html_and_dates() -> None:
    assert html_to_text(
        "<p>Un&nbsp;<b>scandale</b></p><p>ligne<br/>deux</p><script>x()</script>"
    ) == ("Un scandale\n\nligne\ndeux")
    assert iso_from_text("Sat, 28 Nov 2026 03:12:41 +0100") == "2026-11-28T02:12:41+00:00"
    assert iso_from_text("2026-11-28T02:12:41.5Z") == "2026-11-28T02:12:41.500000+00:00"
    assert iso_from_text("yesterday") is None


# --------------------------------------------------------------------------- runner


def post(n: int, text: str = "ACME news") -> dict[str, Any]:
    return {
        "schema_version": 1,
        "platform": "other",
        "id": str(n),
        "url": None,
        "author": {"handle": "a", "followers": 0, "verified": False},
        "text": text,
        "created_at": "2026-11-28T02:12:41+00:00",
    }


class ScriptedConnector(Connector):
    """Yields scripted items per connection; an exception in a script is raised there."""

    name = "scripted"

    def __init__(self, connections: list[list[Any]]) -> None:
        self.connections = connections
        self.cursors: list[dict[str, Any]] = []

    async def stream(self, cursor: Mapping[str, Any]) -> AsyncIterator[SourceItem]:
        self.cursors.append(dict(cursor))
        script = self.connections.pop(0) if self.connections else []
        for step in script:
            if isinstance(step, BaseException):
                raise step
            yield step
        if not self.connections and not self.single_pass:
            await asyncio.Event().wait()  # an idle, open connection


def settings(tmp_path: Path) -> RunnerSettings:
    return RunnerSettings(state_dir=tmp_path, backoff_scale=0.0, checkpoint_seconds=60)


def test_runner_drops_duplicates_and_resumes_from_the_merged_cursor(tmp_path: Path) -> None:
    connector = ScriptedConnector(
        [
            [
                SourceItem.ok(post(1), {"pos": 1}),
                SourceItem.ok(post(2), {"pos": 2}),
                TransientSourceError("dropped"),
            ],
            [SourceItem.ok(post(2), {"pos": 2}), SourceItem.ok(post(3), {"pos": 3})],
        ]
    )
    sink = MemorySink()
    runner = SourceRunner(connector, sink, settings(tmp_path), once=True)
    report = asyncio.run(asyncio.wait_for(runner.run(), 5))
    assert sink.keys == ["other:1", "other:2", "other:3"]
    assert report.duplicate == 1 and report.reconnects == 1
    assert connector.cursors == [{}, {"pos": 2}]
    saved = json.loads((tmp_path / "scripted.json").read_text())
    assert saved == {"cursor": {"pos": 3}, "recent_keys": ["other:1", "other:2", "other:3"]}


def test_state_is_not_advanced_when_delivery_is_not_confirmed(tmp_path: Path) -> None:
    StateStore(tmp_path / "scripted.json").save({"cursor": {"pos": 0}, "recent_keys": []})
    connector = ScriptedConnector([[SourceItem.ok(post(1), {"pos": 1})]])
    sink = MemorySink()
    sink.fail_next_flush = True
    runner = SourceRunner(connector, sink, settings(tmp_path), once=True)
    with pytest.raises(FatalSourceError, match="was not advanced"):
        asyncio.run(asyncio.wait_for(runner.run(), 5))
    assert json.loads((tmp_path / "scripted.json").read_text())["cursor"] == {"pos": 0}


def test_stop_flushes_and_saves_then_returns(tmp_path: Path) -> None:
    connector = ScriptedConnector([[SourceItem.ok(post(1), {"pos": 1})]])
    sink = MemorySink()

    async def scenario() -> None:
        runner = SourceRunner(connector, sink, settings(tmp_path))
        task = asyncio.create_task(runner.run())
        await asyncio.to_thread(sink.wait_for, 1, 5)
        runner.stop("SIGTERM")
        report = await asyncio.wait_for(task, 5)
        assert report.stopped_by == "SIGTERM"

    asyncio.run(scenario())
    assert sink.flushes >= 1
    assert json.loads((tmp_path / "scripted.json").read_text())["cursor"] == {"pos": 1}


class KafkaAwaySink(MemorySink):
    """A sink whose Kafka is away until `back` is set: flushes stay unconfirmed and, past
    `room` posts, sends are refused for now (the producer's memory bound)."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room
        self.back = threading.Event()

    def send(self, post: dict[str, Any]) -> Any:
        if not self.back.is_set() and len(self.posts) >= self.room:
            self.back.wait(0.05)
            raise DeliveryPending("memory bound reached")
        return super().send(post)

    def flush(self, timeout: float | None = None) -> None:
        if not self.back.wait(min(timeout or 0.05, 0.05)):
            raise DeliveryPending(f"{len(self.posts)} post(s) not acknowledged yet")
        super().flush(timeout)


def test_a_kafka_outage_keeps_the_last_acknowledged_state_and_the_run_going(
    tmp_path: Path,
) -> None:
    StateStore(tmp_path / "scripted.json").save({"cursor": {"pos": 0}, "recent_keys": []})
    items = [SourceItem.ok(post(n), {"pos": n}) for n in range(1, 7)]
    connector = ScriptedConnector([items])
    sink = KafkaAwaySink(room=3)
    quick = RunnerSettings(state_dir=tmp_path, backoff_scale=0.0, checkpoint_items=1)

    async def scenario() -> Any:
        runner = SourceRunner(connector, sink, quick, once=True)
        task = asyncio.create_task(runner.run())
        await asyncio.to_thread(sink.wait_for, 3, 5)
        await asyncio.sleep(0.5)  # checkpoints come and go while Kafka is away
        assert not task.done(), "an outage is not fatal"
        saved = json.loads((tmp_path / "scripted.json").read_text())
        assert saved["cursor"] == {"pos": 0}, "nothing acknowledged, nothing saved"
        assert len(sink.posts) == 3, "the memory bound holds the rest back"
        sink.back.set()
        return await asyncio.wait_for(task, 5)

    report = asyncio.run(scenario())
    assert report.produced == 6 and sink.keys == [f"other:{n}" for n in range(1, 7)]
    assert json.loads((tmp_path / "scripted.json").read_text())["cursor"] == {"pos": 6}


def test_a_stop_during_an_outage_keeps_the_state_where_kafka_acknowledged(tmp_path: Path) -> None:
    StateStore(tmp_path / "scripted.json").save({"cursor": {"pos": 0}, "recent_keys": []})
    connector = ScriptedConnector([[SourceItem.ok(post(n), {"pos": n}) for n in (1, 2, 3)]])
    sink = KafkaAwaySink(room=2)
    quick = RunnerSettings(state_dir=tmp_path, backoff_scale=0.0, flush_timeout=0.2)

    async def scenario() -> None:
        runner = SourceRunner(connector, sink, quick)
        task = asyncio.create_task(runner.run())
        await asyncio.to_thread(sink.wait_for, 2, 5)
        runner.stop("SIGTERM")
        with pytest.raises(FatalSourceError, match="restart fetches the rest again"):
            await asyncio.wait_for(task, 5)

    asyncio.run(scenario())
    assert json.loads((tmp_path / "scripted.json").read_text())["cursor"] == {"pos": 0}


def test_filter_blank_text_invalid_posts_and_rejects(tmp_path: Path) -> None:
    connector = ScriptedConnector(
        [
            [
                SourceItem.ok(post(1, "ACME leak")),
                SourceItem.ok(post(2, "the weather")),
                SourceItem.ok(post(3, "   ")),
                SourceItem.ok({**post(4), "created_at": "not a time"}),
                SourceItem.bad("broken frame", b"\x00raw"),
            ]
        ]
    )
    sink = MemorySink()
    runner = SourceRunner(
        connector, sink, settings(tmp_path), text_filter=lambda t: "ACME" in t, once=True
    )

    def counted(outcome: str) -> float:
        labels = {"source": "scripted", "outcome": outcome}
        return REGISTRY.get_sample_value("vigie_source_items_total", labels) or 0.0

    before = {o: counted(o) for o in ("produced", "filtered", "invalid")}
    report = asyncio.run(asyncio.wait_for(runner.run(), 5))
    assert {o: counted(o) - before[o] for o in before} == {
        "produced": 1,
        "filtered": 2,
        "invalid": 2,
    }
    lag = REGISTRY.get_sample_value("vigie_source_lag_seconds", {"source": "scripted"})
    assert lag is not None and lag > 0  # the post is dated 2026-11-28T02:12:41
    assert sink.keys == ["other:1"]
    assert (report.filtered, report.invalid) == (2, 2)
    lines = [json.loads(x) for x in (tmp_path / "scripted.rejects.jsonl").read_text().splitlines()]
    assert lines[0]["reason"].startswith("other:4: created_at:")
    assert lines[1]["reason"] == "broken frame" and lines[1]["raw"] == "\x00raw"


def test_rate_limit_waits_as_told_and_fatal_errors_stop(tmp_path: Path) -> None:
    runner = SourceRunner(ScriptedConnector([]), MemorySink(), RunnerSettings(state_dir=tmp_path))
    assert 30.0 <= runner._delay_for(RateLimited("429", 30.0), healthy=False) <= 31.0
    assert runner._delay_for(TransientSourceError("dropped"), healthy=True) == 0.0
    connector = ScriptedConnector([[FatalSourceError("bad token")]])
    with pytest.raises(FatalSourceError, match="bad token"):
        asyncio.run(
            asyncio.wait_for(SourceRunner(connector, MemorySink(), settings(tmp_path)).run(), 5)
        )


def test_posts_over_the_record_limit_are_rejected_not_sent(tmp_path: Path) -> None:
    connector = ScriptedConnector([[SourceItem.ok(post(1, "ACME " * 600)), SourceItem.ok(post(2))]])
    sink = MemorySink()
    limits = RunnerSettings(state_dir=tmp_path, max_record_bytes=2048)
    report = asyncio.run(
        asyncio.wait_for(SourceRunner(connector, sink, limits, once=True).run(), 5)
    )
    assert sink.keys == ["other:2"]
    assert report.invalid == 1
    assert report.rejects[0]["reason"].startswith("other:1: record of ")
