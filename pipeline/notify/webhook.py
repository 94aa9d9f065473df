"""Generic webhook: the incident as JSON, signed with HMAC-SHA256 (see docs/alerting.md).

Signature: `X-Vigie-Signature: sha256=<hex>` where hex = HMAC-SHA256(secret,
"<X-Vigie-Timestamp>.<raw body>"). Signing the timestamp with the body lets a receiver
reject replays older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from pipeline.notify.base import post
from pipeline.notify.render import Message
from pipeline.settings import Secret

__all__ = ["WebhookReceiver", "webhook_body", "sign", "verify_signature"]

SIGNATURE_HEADER = "X-Vigie-Signature"
TIMESTAMP_HEADER = "X-Vigie-Timestamp"
KEY_HEADER = "X-Vigie-Notification-Key"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, now: float, tolerance_s: float = 300
) -> bool:
    """What a receiver should do: check the signature and that the timestamp is recent."""
    try:
        fresh = abs(now - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def webhook_body(message: Message) -> dict[str, Any]:
    """Version 1 of the webhook body, documented in docs/alerting.md."""
    return {
        "schema_version": 1,
        "notification_key": message.key,
        "kind": message.kind,
        "incident_id": message.incident_id,
        "brand": message.brand,
        "brand_name": message.brand_name,
        "severity": message.severity,
        "title": message.title,
        "summary": message.summary,
        "sentiment": message.sentiment,
        "top_posts": [
            {
                "author": p.author,
                "followers": p.followers,
                "text": p.text,
                "url": p.url,
                "platform": p.platform,
                "sentiment": p.sentiment,
            }
            for p in message.top_posts
        ],
        "surging_terms": list(message.surging_terms),
        "dashboard_url": message.dashboard_url,
        "opened_at": message.opened_at,
        "updated_at": message.updated_at,
        "resolved_at": message.resolved_at,
        "incident": message.event,
    }


@dataclass(frozen=True)
class WebhookReceiver:
    name: str
    url: Secret  # a URL may embed a token, so it is treated as one
    secret: Secret
    type: str = "webhook"

    @property
    def rate_limit_key(self) -> None:
        return None

    def secrets(self) -> tuple[str, ...]:
        return (self.url.reveal(), self.secret.reveal())

    async def send(self, message: Message, http: aiohttp.ClientSession) -> int:
        body = orjson.dumps(webhook_body(message))
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.secret.reveal(), timestamp, body),
            KEY_HEADER: message.key,
        }
        return await post(http, self.url.reveal(), body, headers, self.secrets())
