"""The source framework: what every connector shares (the names of its modules, in one place).

One idea a module: `errors` (what can go wrong), `items` (what a connector yields),
`connector` (the class a platform implements), `backoff` (waiting between attempts),
`state` (the resume state), `sinks` (where posts go), `runner` (`SourceRunner`). This
module re-exports their public names, so `from pipeline.sources.base import ...` keeps
working; new code imports from the module that defines the name.

A connector only knows its platform: it opens one connection (or runs one polling loop)
and yields `SourceItem`s. The `SourceRunner` around it does the rest, the same way for
every platform:

- reconnects with exponential backoff and jitter, or waits exactly as long as a
  rate-limit answer asked (`RateLimited`);
- drops a post whose key it sent recently, so a reconnect that replays never sends a
  post twice;
- applies the watchlist pre-filter (a plain `text -> bool` function);
- hands posts to a `PostSink` and saves the resume state (cursor and recent keys) only
  after the sink confirmed delivery, so a crash re-reads rather than loses;
- counts everything in the SOURCE_* metrics and writes every unusable platform item,
  with its reason, to `<state dir>/<name>.rejects.jsonl`;
- stops cleanly: `stop()` (wired to SIGTERM/SIGINT by `run_until_signal`) flushes the
  sink, saves the state and returns.
"""

from __future__ import annotations

from pipeline.records import post_key
from pipeline.sources.backoff import (
    DEFAULT_POLICIES,
    Backoff,
    BackoffPolicy,
    read_within,
    remaining_requests,
    retry_after_seconds,
)
from pipeline.sources.connector import Connector
from pipeline.sources.errors import (
    MALFORMED,
    DeliveryError,
    DeliveryPending,
    FatalSourceError,
    RateLimited,
    TransientSourceError,
)
from pipeline.sources.items import Post, SourceItem, TextFilter, deep_merge
from pipeline.sources.runner import RunnerSettings, RunReport, SourceRunner, run_until_signal
from pipeline.sources.sinks import Delivery, PostSink
from pipeline.sources.state import RecentKeys, StateStore, state_dir

__all__ = [
    "Backoff",
    "BackoffPolicy",
    "Connector",
    "Delivery",
    "DeliveryError",
    "DeliveryPending",
    "FatalSourceError",
    "MALFORMED",
    "Post",
    "PostSink",
    "RateLimited",
    "RecentKeys",
    "RunReport",
    "RunnerSettings",
    "SourceItem",
    "SourceRunner",
    "StateStore",
    "TextFilter",
    "TransientSourceError",
    "deep_merge",
    "post_key",
    "retry_after_seconds",
    "run_until_signal",
    "state_dir",
    "DEFAULT_POLICIES",
    "read_within",
    "remaining_requests",
]
