"""The worker's one current watchlist, reloaded when its file changes.

Every stage of a worker reads the watchlist from one `WatchlistWatcher`, so that all of
them switch to a new version at the same moment: a brand added while the worker runs is
matched by score, counted by detect and routed by alert from the same check, not
scored by one stage and dead-lettered as unknown by the next. Stages that derive state
from the watchlist (detect's per-brand settings, alert's receivers and owners) register
a callback that runs on each new version, before any further record is handled.

The version is the first 12 hex digits of the file's SHA-256, exported with the load
time and the brand count (`vigie_watchlist_*`), so that ops can see that every worker
runs the same file. An edit that cannot be used (bad YAML, an unknown receiver...) is
logged with every problem and counted in `vigie_watchlist_reload_errors_total`; the last
good version stays in use. A Kubernetes ConfigMap update (a symlink swap) is a change of
the file like any other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from pipeline import metrics
from pipeline.watchlist import Watchlist, WatchlistError, parse_watchlist

__all__ = ["WatchlistWatcher", "CHECK_INTERVAL_S"]

log = logging.getLogger("vigie.watchlist")

# How often the file is looked at (one stat; read and parsed only when it changed).
CHECK_INTERVAL_S = 2.0

Listener = Callable[[Watchlist], None]


def version_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:12]


class WatchlistWatcher:
    """Holds the current watchlist; `check()` reloads it if the file changed."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._listeners: list[Listener] = []
        self._stamp = self._stat()
        content = self._read()
        self.watchlist = self._load(content)  # a bad file at start stops the worker
        self.version = version_of(content)
        self._failed_version: str | None = None
        self._publish()

    def on_change(self, listener: Listener) -> None:
        """Call `listener(new_watchlist)` on every new version (not for the current one)."""
        self._listeners.append(listener)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)  # follows symlinks: a ConfigMap swap changes the inode
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size, stat.st_ino

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            raise WatchlistError(self.path, None, "", "file not found") from None
        except OSError as exc:
            raise WatchlistError(self.path, None, "", f"cannot read: {exc.strerror}") from None

    def _load(self, content: bytes) -> Watchlist:
        """The watchlist in `content` (read once, so the version is that of what is used)."""
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WatchlistError(self.path, None, "", f"not UTF-8 (byte {exc.start})") from None
        return parse_watchlist(text, self.path)

    def check(self) -> bool:
        """Reload if the file changed; True when a new version is now in use."""
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        version = "unreadable"
        try:
            content = self._read()
            version = version_of(content)
            if version == self.version:
                self._recovered()
                return False
            if version == self._failed_version:
                return False  # the same bad content, touched again: already reported
            watchlist = self._load(content)
        except WatchlistError as exc:
            self._failed_version = version
            metrics.WATCHLIST_RELOAD_ERRORS.inc()
            metrics.WATCHLIST_RELOAD_FAILING.set(1)
            log.error("watchlist %s (version %s) not used, still running version %s:\n%s",
                      self.path, version, self.version, exc)
            return False
        previous = self.version
        self.watchlist, self.version = watchlist, version
        for listener in self._listeners:
            try:
                listener(watchlist)
            except Exception:  # one stage's failure must not keep the others on the old one
                log.exception("watchlist version %s: a stage could not apply it", version)
        self._recovered()
        metrics.WATCHLIST_INFO.remove(previous)
        self._publish()
        log.info("watchlist %s: version %s in use (%d brands, %d receivers; was %s)",
                 self.path, version, len(watchlist.brands), len(watchlist.receivers), previous)
        return True

    def _recovered(self) -> None:
        self._failed_version = None
        metrics.WATCHLIST_RELOAD_FAILING.set(0)

    def _publish(self) -> None:
        metrics.WATCHLIST_INFO.labels(version=self.version).set(1)
        metrics.WATCHLIST_BRANDS.set(len(self.watchlist.brands))
        metrics.WATCHLIST_LOADED_TIMESTAMP.set(time.time())
