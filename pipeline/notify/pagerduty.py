"""PagerDuty Events API v2: trigger on open/escalation, resolve on resolution.

`dedup_key` is the incident id, so every trigger about one incident updates one PagerDuty
alert and the resolve closes it. A reminder is sent as a trigger too: PagerDuty folds it
into the same alert (refreshing its details) and runs its own re-notification rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from pipeline.notify.base import post
from pipeline.notify.render import Message, sparkline, storyline_sentence, trend_line
from pipeline.settings import Secret

__all__ = ["PagerDutyReceiver", "pagerduty_event", "DEFAULT_URL"]

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
_SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}


def pagerduty_event(message: Message, routing_key: str) -> dict[str, Any]:
    if message.kind == "resolved":
        return {
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": message.incident_id,
        }
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": message.incident_id,
        "payload": {
            "summary": " — ".join(
                part for part in (message.title, storyline_sentence(message), message.summary)
                if part)[:1024],
            "source": f"vigie/{message.brand}",
            "severity": _SEVERITY.get(message.severity, "error"),
            "timestamp": message.updated_at or None,
            "component": message.brand,
            "group": "brand-reputation",
            "class": "negative-wave",
            "custom_details": {
                "brand": message.brand_name,
                "storylines": storyline_sentence(message),
                "trend": trend_line(message),
                "trend_sparkline": sparkline([float(p.negative) for p in message.trend]),
                "dashboard": message.dashboard_url,
                "sentiment": message.sentiment,
                "surging_terms": list(message.surging_terms),
                "top_posts": [
                    {"author": p.author, "followers": p.followers, "text": p.text, "url": p.url}
                    for p in message.top_posts
                ],
                "notification_key": message.key,
            },
        },
        "links": [{"href": message.dashboard_url, "text": "Grafana dashboard"}],
        "client": "Vigie",
        "client_url": message.dashboard_url,
    }


@dataclass(frozen=True)
class PagerDutyReceiver:
    name: str
    routing_key: Secret
    url: str = DEFAULT_URL
    type: str = "pagerduty"

    @property
    def rate_limit_key(self) -> None:
        return None

    def secrets(self) -> tuple[str, ...]:
        return (self.routing_key.reveal(),)

    async def send(self, message: Message, http: aiohttp.ClientSession) -> int:
        event = pagerduty_event(message, self.routing_key.reveal())
        if event.get("payload", {}).get("timestamp") is None:
            event.get("payload", {}).pop("timestamp", None)
        body = orjson.dumps(event)
        headers = {"Content-Type": "application/json"}
        return await post(http, self.url, body, headers, self.secrets())
