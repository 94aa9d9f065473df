"""The records of `mentions.scored` (docs/records.md): the mention, one post about one
brand with its sentiment, and the clock tick, how far the score stage has read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from models.sentiment.serving.sentence_vectors import pack_int8
from pipeline.records import post_key

# 2: `vector`, the post's sentence vector for joining storylines across languages
# (optional; version-1 mentions are read as mentions without one).
MENTION_SCHEMA_VERSION = 2
# Version 1 ticks (`{"tick": time}`, sent by the detect stage itself) carried no progress;
# the detector ignores them.
TICK_SCHEMA_VERSION = 2


def mention_record(post: dict[str, Any], brand_id: str, matched: list[str], label: str,
                   scores: dict[str, float], model: str,
                   vector: np.ndarray | None = None) -> dict[str, Any]:
    """`vector`: the post's sentence vector centred on its language, carried packed as
    int8 (docs/records.md); None leaves the field out."""
    author = post.get("author") or {}
    record = {
        "schema_version": MENTION_SCHEMA_VERSION,
        "brand": brand_id,
        "post_key": post_key(post),
        "platform": post["platform"],
        "post_id": post["id"],
        "url": post.get("url"),
        "created_at": post["created_at"],
        "language": post.get("language", "und"),
        "author": author,
        "text": post["text"],
        # Who may have seen it: the author's audience (views are rarely reported).
        "reach": int(author.get("followers") or 0),
        "reshare_of": post.get("reshare_of"),
        "engagement": post.get("engagement") or {},
        "sentiment": {"label": label,
                      "scores": {name: round(float(value), 4) for name, value in scores.items()}},
        "model": model,
        "matched": matched,
        # With created_at, how long the post took to be scored (for latency metrics).
        "scored_at": datetime.now(UTC).isoformat(),
    }
    if vector is not None:
        record["vector"] = pack_int8(vector)
    return record


def tick_record(progress: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A clock tick: `progress` is a `SourceProgress.report()` of the score worker."""
    return {"schema_version": TICK_SCHEMA_VERSION, "tick": now.isoformat(),
            "progress": progress}
