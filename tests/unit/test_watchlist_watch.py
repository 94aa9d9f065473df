"""One watchlist per worker, reloaded on change; a bad edit keeps the last good version."""

from __future__ import annotations

import hashlib
import os

import pytest

from pipeline.watchlist import WatchlistError
from pipeline.watchlist_watch import WatchlistWatcher

ONE = "version: 1\nbrands:\n  - {id: acme, name: ACME}\n"
TWO = ONE + "  - {id: nova, name: Nova Energie}\n"


def write(path, text, bump):
    path.write_text(text)
    # Two writes within one clock tick must still look like a change.
    stamp = 1_700_000_000 + bump
    os.utime(path, (stamp, stamp))


def sample(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels or None)


def test_a_new_version_reaches_every_listener_and_the_metrics(tmp_path):
    path = tmp_path / "watchlist.yaml"
    write(path, ONE, 0)
    watcher = WatchlistWatcher(path)
    first = hashlib.sha256(ONE.encode()).hexdigest()[:12]
    assert watcher.version == first and sample("vigie_watchlist_info", version=first) == 1
    seen = []
    watcher.on_change(lambda watchlist: seen.append(sorted(watchlist.brands)))
    assert watcher.check() is False  # unchanged

    errors = sample("vigie_watchlist_reload_errors_total")
    write(path, TWO.replace("name: Nova", "nmae: Nova"), 1)
    assert watcher.check() is False
    write(path, TWO.replace("name: Nova", "nmae: Nova"), 2)  # touched, same bad content
    assert watcher.check() is False
    assert watcher.version == first and sorted(watcher.watchlist.brands) == ["acme"]
    assert sample("vigie_watchlist_reload_errors_total") == errors + 1
    assert sample("vigie_watchlist_reload_failing") == 1
    assert seen == []

    write(path, TWO, 3)
    assert watcher.check() is True
    second = hashlib.sha256(TWO.encode()).hexdigest()[:12]
    assert watcher.version == second and seen == [["acme", "nova"]]
    assert sample("vigie_watchlist_info", version=second) == 1
    assert sample("vigie_watchlist_info", version=first) is None
    assert sample("vigie_watchlist_reload_failing") == 0
    assert sample("vigie_watchlist_brands") == 2


def test_a_bad_file_at_start_is_refused(tmp_path):
    path = tmp_path / "watchlist.yaml"
    write(path, "brands: [", 0)
    with pytest.raises(WatchlistError, match="invalid YAML"):
        WatchlistWatcher(path)
    with pytest.raises(WatchlistError, match="file not found"):
        WatchlistWatcher(tmp_path / "missing.yaml")

