"""What a source remembers across restarts: its cursor and the keys it sent recently."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.settings import StateSettings
from pipeline.sources.errors import FatalSourceError

__all__ = ["RecentKeys", "StateStore", "state_dir"]


class RecentKeys:
    """The keys of the last `capacity` posts sent, oldest forgotten first."""

    def __init__(self, capacity: int, keys: Iterable[str] = ()) -> None:
        self.capacity = max(1, capacity)
        self._keys: OrderedDict[str, None] = OrderedDict()
        for key in keys:
            self.add(key)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: str) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def snapshot(self) -> list[str]:
        return list(self._keys)


def state_dir() -> Path:
    """`$VIGIE_STATE_DIR/sources`, or `<project root>/.state/sources`."""
    return StateSettings.from_env().sources_dir


class StateStore:
    """One JSON file per source: {"cursor": {...}, "recent_keys": [...]}; atomic writes.

    Saves run in worker threads and may overlap (a cancelled periodic save still running
    while the final one starts), so each writes its own temporary file and the rename
    happens under a lock: the file on disk is always one whole snapshot.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._write_lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"cursor": {}, "recent_keys": []}
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # Refuse rather than silently start from scratch (which would re-read or skip).
            raise FatalSourceError(
                f"{self.path}: the resume state is not valid JSON ({exc.msg}, line {exc.lineno});"
                " fix or delete it to start from now"
            ) from None
        if not isinstance(data, dict):
            raise FatalSourceError(f"{self.path}: the resume state must be a JSON object")
        data.setdefault("cursor", {})
        data.setdefault("recent_keys", [])
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._write_lock:
            descriptor, tmp = tempfile.mkstemp(
                dir=self.path.parent, prefix=self.path.name + ".", suffix=".tmp"
            )
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, ensure_ascii=False)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
