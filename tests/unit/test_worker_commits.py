"""The worker's consumer commits every processed offset, even when a restart made Faust
acknowledge some offsets twice (no broker needed: the commit arithmetic only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from faust.types import TP

from agents.app import create_app
from agents.transport import settle_acked
from pipeline.settings import KafkaSettings, WorkerSettings


def test_settle_keeps_each_offset_once_and_none_already_committed() -> None:
    assert settle_acked([7, 5, 6, 6, 4, 9], committed=5) == [5, 6, 7, 9]
    assert settle_acked([3, 3], committed=None) == [3]
    assert settle_acked([1, 2], committed=5) == []


@pytest.fixture
def consumer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("VIGIE_AGENTS", "validate")
    app, _ = create_app(KafkaSettings(bootstrap_servers="127.0.0.1:1"),
                        WorkerSettings(app_id="unit-commits", state_dir=tmp_path))
    return app.consumer


def test_offsets_acknowledged_twice_after_a_restart_are_committed_to_the_end(consumer) -> None:
    # What a restarted worker held for one posts.raw partition (seen in a SIGKILL trial):
    # the offsets read before the recovery's seek were acknowledged a second time after it.
    tp = TP("posts.raw", 1)
    acked = [575, 576] + [o for o in range(577, 729) for _ in (0, 1)] + list(range(729, 2577))
    consumer._committed_offset[tp] = 576
    consumer._acked[tp] = list(acked)
    consumer._acked_index[tp] = set(acked)

    # Faust's own arithmetic answered 578 here, then one or two offsets per commit.
    assert consumer._new_offset(tp) == 2577
    assert consumer._acked[tp] == [] and not consumer._acked_index[tp]


def test_a_real_gap_still_holds_the_commit_back(consumer) -> None:
    tp = TP("posts.raw", 2)
    consumer._committed_offset[tp] = 100
    consumer._acked[tp] = [100, 101, 101, 102, 104, 105]
    consumer._acked_index[tp] = {100, 101, 102, 104, 105}
    assert consumer._new_offset(tp) == 103  # 103 is not processed yet: at-least-once holds
    assert consumer._acked[tp] == [104, 105]
