"""How the detect stage keeps a brand's detector state in its Faust table.

A brand's state is 50-280 KB once storylines carry sentence vectors, and a busy brand
changes with every batch of the detect agent (up to ten a second). Most of it does not
change that often, so it is kept in three kinds of table values:

- `<brand>`: what changes with every mention: the open interval, the clock, the offset
  of the last record counted; and the version of the brand's settled part;
- `<brand>|settled|<version>`: the rest of the monitor (detectors' baselines, the
  incident, the trend, the term baseline, the window's list of intervals), which changes
  when an interval closes or an incident moves; a new version when it has changed;
- `<brand>|window|<start>`: one closed interval of the evidence window (most of the
  bytes: its storylines and their sentence vectors), written once, when it closes.

Writes go in that order (intervals, settled part, brand value), and only then are the
values the brand no longer names deleted: a crash between any two writes leaves a brand
value whose parts are all in the table. A part left over by such a crash is deleted when
the brand is next read from the table. Brand ids have no "|" (pipeline/watchlist.py), so
these keys never meet a brand's own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from models.detection import BrandClock, BrandMonitor, DetectorConfig

__all__ = ["BrandState", "BrandStore", "monitor_state", "settled_key", "window_key"]

# The part of a monitor's state that changes with every mention (BrandMonitor.to_state).
OPEN_PART = "current"


def window_key(brand_id: str, start: str) -> str:
    return f"{brand_id}|window|{start}"


def settled_key(brand_id: str, version: int) -> str:
    return f"{brand_id}|settled|{version}"


@dataclass
class Saved:
    """What the table holds for a brand beside its own value (written or restored)."""

    starts: frozenset[str] = frozenset()
    version: int = 0  # of the settled part; 0: none written
    # That version's content, as JSON: a snapshot (the monitor's state may share lists
    # with the monitor, which go on changing), compared with the next one.
    settled: bytes | None = field(default=None, repr=False)


class BrandState:
    """One brand's monitor, clock and last counted offset, and what of it the table has."""

    def __init__(self, monitor: BrandMonitor, clock: BrandClock, last_offset: int,
                 saved: Saved | None = None):
        self.monitor = monitor
        self.clock = clock
        self.last_offset = last_offset
        self.saved = saved or Saved()


def _snapshot(settled: dict[str, Any]) -> bytes:
    return orjson.dumps(settled, option=orjson.OPT_NON_STR_KEYS)


def _parts(values: Iterable[tuple[Any, Any]], brand_id: str
           ) -> tuple[dict[str, Any], dict[int, Any]]:
    """The brand's window intervals by start and its settled parts by version."""
    window, settled = window_key(brand_id, ""), settled_key(brand_id, 0)[:-1]
    intervals: dict[str, Any] = {}
    versions: dict[int, Any] = {}
    for key, value in values:
        if not isinstance(key, str) or not key.startswith(brand_id + "|"):
            continue
        if key.startswith(window):
            intervals[key[len(window):]] = value
        elif key.startswith(settled) and key[len(settled):].isdigit():
            versions[int(key[len(settled):])] = value
    return intervals, versions


def monitor_state(values: Mapping[Any, Any], brand_id: str
                  ) -> tuple[dict[str, Any], dict[str, Any], Saved]:
    """From a table's values (or a changelog's last value per key): the brand's monitor
    state, its window's intervals by start, and what the table holds of it. KeyError when
    the brand has no value; ValueError when a part it names is missing."""
    intervals, versions = _parts(values.items(), brand_id)
    state, saved = _assemble(values[brand_id], versions, brand_id)
    return state, intervals, saved


def _assemble(record: dict[str, Any], versions: Mapping[int, Any], brand_id: str
              ) -> tuple[dict[str, Any], Saved]:
    if "monitor" in record:  # written before the settled part was kept apart
        state = record["monitor"]
        return state, Saved(frozenset(state.get("window_starts", ())))
    version = int(record["settled"])
    settled = versions.get(version)
    if settled is None:
        raise ValueError(f"brand {brand_id!r}: its settled part {version} is not in the table")
    return ({**settled, OPEN_PART: record[OPEN_PART]},
            Saved(frozenset(settled.get("window_starts", ())), version, _snapshot(settled)))


class BrandStore:
    """The brand states in a Faust table (any mutable mapping whose assignments and `pop`
    write the changelog)."""

    def __init__(self, table: MutableMapping[Any, Any]) -> None:
        self.table = table

    def last_offset(self, brand_id: str) -> int | None:
        """The offset of the last record counted in the brand's stored state (None: no
        state), to tell whether a state in memory is still the stored one."""
        record = self.table.get(brand_id)
        return None if record is None else int(record.get("last_offset", -1))

    def load(self, brand_id: str, config: DetectorConfig,
             lateness: timedelta) -> BrandState | None:
        """The brand's stored state (None: none); parts it no longer names are deleted."""
        record = self.table.get(brand_id)
        if record is None:
            return None
        intervals, versions = _parts(self.table.items(), brand_id)
        state, saved = _assemble(record, versions, brand_id)
        # States written before the watermark kept only `open_start` beside the monitor.
        clock_state = record.get("clock") or {"open_start": record.get("open_start")}
        brand = BrandState(BrandMonitor.from_state(state, config, intervals),
                           BrandClock.from_state(clock_state, config.interval_seconds,
                                                 lateness),
                           int(record.get("last_offset", -1)), saved)
        for start in intervals.keys() - saved.starts:
            self.table.pop(window_key(brand_id, start), None)
        for version in versions.keys() - {saved.version}:
            self.table.pop(settled_key(brand_id, version), None)
        return brand

    def save(self, brand_id: str, brand: BrandState) -> None:
        """Write what changed of the brand's state, in the order the module docstring says."""
        saved = brand.saved
        settled = brand.monitor.to_state(window_by_start=True)
        open_part = settled.pop(OPEN_PART)
        starts = settled["window_starts"]
        for start in starts:
            if start not in saved.starts:
                self.table[window_key(brand_id, start)] = brand.monitor.interval_state(start)
        version, snapshot = saved.version, _snapshot(settled)
        if snapshot != saved.settled:
            version += 1
            self.table[settled_key(brand_id, version)] = settled
        self.table[brand_id] = {"settled": version, OPEN_PART: open_part,
                                "clock": brand.clock.to_state(),
                                "last_offset": brand.last_offset}
        if version != saved.version and saved.version:
            self.table.pop(settled_key(brand_id, saved.version), None)
        for start in saved.starts.difference(starts):
            self.table.pop(window_key(brand_id, start), None)
        brand.saved = Saved(frozenset(starts), version, snapshot)
