"""A sample incident event in the docs/records.md format, with evidence worth showing;
shared by the unit tests of message rendering and the integration tests of alerting."""

from __future__ import annotations

from typing import Any


def incident_event(
    incident_id: str = "acme-20261128T0212Z",
    event: str = "opened",
    sequence: int = 1,
    severity: str = "critical",
    brand: str = "acme",
    brand_name: str = "ACME",
    escalated: bool = False,
    storylines: bool = False,
) -> dict[str, Any]:
    """An incident event in the records.md format, with evidence worth showing; with
    `storylines`, a version 2 event with two storylines and two hours of trend."""
    resolved = event == "resolved"
    sample = {
        "schema_version": 1,
        "incident_id": incident_id,
        "brand": brand,
        "brand_name": brand_name,
        "event": event,
        "sequence": sequence,
        "severity": severity,
        "escalated": escalated,
        "opened_at": "2026-11-28T02:12:00+00:00",
        "updated_at": "2026-11-28T02:14:00+00:00",
        "resolved_at": "2026-11-28T02:40:00+00:00" if resolved else None,
        "interval_seconds": 60,
        "summary": "312 negative posts in 10 min, 14x normal; reach 2.1M",
        "observed": {
            "mentions": 340,
            "negative": 312,
            "negative_share": 0.92,
            "reach_negative": 2100000,
        },
        "expected": {
            "mentions": 25.0,
            "negative": 22.0,
            "negative_share": 0.2,
            "reach_negative": 40000.0,
        },
        "score": 0.999,
        "window_minutes": 10,
        "sentiment": {"negative": 312, "neutral": 20, "positive": 8},
        "top_posts": [
            {
                "post_key": "twitter:1863012345",
                "url": "https://x.com/jdoe/status/1863012345",
                "author_handle": "jdoe",
                "author_name": "J. Doe",
                "followers": 1200000,
                "text": "ACME leaked customer data <again> & nobody told us",
                "sentiment": "negative",
                "created_at": "2026-11-28T02:12:41+00:00",
            },
            {
                "post_key": "mastodon:99",
                "url": "https://mastodon.example/@ana/99",
                "author_handle": "ana",
                "author_name": "Ana",
                "followers": 8300,
                "text": "#acmeleaks is everywhere",
                "sentiment": "negative",
                "created_at": "2026-11-28T02:13:05+00:00",
            },
        ],
        "surging_terms": [{"term": "#acmeleaks", "count": 120, "lift": 35.0}],
        "trend": [{"start": "2026-11-28T02:03:00+00:00", "mentions": 3, "negative": 1}],
    }
    if storylines:
        sample["schema_version"] = 2
        sample["storylines"] = STORYLINES
        sample["trend"] = TREND
    return sample


def _trend() -> list[dict[str, Any]]:
    """Two hours of minutes up to 02:14: quiet (1-3 negative), then the wave from 02:05."""
    from datetime import datetime, timedelta

    end = datetime.fromisoformat("2026-11-28T02:14:00+00:00")
    points = []
    for back in range(120, 0, -1):
        start = end - timedelta(minutes=back)
        minute = 120 - back
        wave = max(0, minute - 110)
        negative = 1 + minute % 3 + wave * wave * 4
        points.append({"start": start.isoformat(), "mentions": negative + 4,
                       "negative": negative, "expected_negative": 2.0})
    return points


TREND = _trend()
STORYLINES = [
    {"label": "customer-data leak", "terms": ["fichier", "#datagate", "clients"],
     "headline": "EXCLUSIF : le fichier clients d'ACME revendu à des courtiers",
     "headline_copies": 140, "posts": 260, "negative": 243, "negative_share": 0.935,
     "share": 0.78, "reach": 1850000,
     "first_post": {"post_key": "twitter:1", "url": "https://x.com/leaker/status/1",
                    "author_handle": "leaker", "created_at": "2026-11-28T02:07:12+00:00"},
     "top_post": {"post_key": "twitter:9", "url": "https://x.com/bignews/status/9",
                  "author_handle": "bignews", "author_name": "Big News", "followers": 1200000,
                  "created_at": "2026-11-28T02:09:40+00:00", "text": "ACME data for sale"}},
    {"label": "price rise", "terms": ["tarifs", "#haussedesprix"],
     "headline": "ACME augmente ses tarifs de 30 %", "headline_copies": 30, "posts": 80,
     "negative": 69, "negative_share": 0.862, "share": 0.22, "reach": 210000,
     "first_post": {"post_key": "twitter:2", "url": None, "author_handle": "jane",
                    "created_at": "2026-11-28T02:08:00+00:00"},
     "top_post": {"post_key": "twitter:3", "url": None, "author_handle": "jane",
                  "author_name": "Jane", "followers": 300,
                  "created_at": "2026-11-28T02:08:00+00:00", "text": "30 % de plus"}},
]
