"""What a connector yields (`SourceItem`) and the posts in it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Post", "SourceItem", "TextFilter", "deep_merge"]


Post = dict[str, Any]
TextFilter = Callable[[str], bool]


@dataclass(frozen=True)
class SourceItem:
    """One thing a connector read.

    Exactly one of `post` / `rejected` / `retry` is usually set; an item with only
    `state` is a checkpoint (e.g. an RSS feed's new ETag after its items).
    `state` is merged (deep) into the connector's resume state once everything read
    before it is delivered.
    """

    post: Post | None = None
    state: Mapping[str, Any] | None = None
    rejected: str | None = None
    raw: str | None = None
    retry: str | None = None

    @classmethod
    def ok(cls, post: Post, state: Mapping[str, Any] | None = None) -> SourceItem:
        return cls(post=post, state=state)

    @classmethod
    def bad(
        cls, reason: str, raw: Any = None, state: Mapping[str, Any] | None = None
    ) -> SourceItem:
        return cls(rejected=reason, raw=raw_snippet(raw), state=state)

    @classmethod
    def checkpoint(cls, state: Mapping[str, Any]) -> SourceItem:
        return cls(state=state)


def raw_snippet(raw: Any, limit: int = 2000) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        try:
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            raw = repr(raw)
    return raw if len(raw) <= limit else raw[:limit] + "…"


def deep_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `patch` into `target` in place: dicts merge, everything else replaces."""
    for key, value in patch.items():
        current = target.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            deep_merge(current, value)
        elif isinstance(value, Mapping):
            target[key] = deep_merge({}, value)
        else:
            target[key] = value
    return target
