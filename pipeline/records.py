"""The records Vigie passes between stages, and the few facts every stage must agree on.

A reader following a post, a mention, a tick, an incident or a dead letter through the code
finds here how it is keyed, which severities exist and how an incident is put into words:

- `post_key` — the Kafka key and identity of a post (`platform:id`, platform lowercased,
  `x` stored as `twitter`); mentions carry it as `post_key`, dead letters as `key`.
- `SEVERITIES` — the incident severities, lowest first. Defined by the incident lifecycle
  (models/detection/lifecycle.py), which is where a severity is decided.
- `human_number`, `wave_summary`, `calm_summary`, `ratio_text` —
  incident wording, defined in models/detection/wording.py because the detector writes
  the summary and `models/` may import nothing of the pipeline.
- Dead letters are built by pipeline/deadletter.py (`dead_letter`, `notification_dead_letter`);
  record shapes and schema versions are in docs/records.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.detection.lifecycle import SEVERITIES
from models.detection.wording import (
    calm_summary,
    human_number,
    ratio_text,
    wave_summary,
)

__all__ = [
    "PLATFORM_ALIASES",
    "SEVERITIES",
    "human_number",
    "post_key",
    "ratio_text",
    "calm_summary",
    "wave_summary",
]

PLATFORM_ALIASES = {"x": "twitter"}  # a platform's other names -> the one stored


def post_key(post: Mapping[str, Any]) -> str:
    """The Kafka key of a post: `platform:id`, the identity used for deduplication.

    >>> post_key({"platform": "X", "id": "1863012345"})
    'twitter:1863012345'
    """
    platform = str(post.get("platform", "")).lower()
    return f"{PLATFORM_ALIASES.get(platform, platform)}:{post.get('id', '')}"
