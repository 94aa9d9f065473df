"""Generic webhook: the incident as JSON, signed with HMAC-SHA256 (see docs/alerting.md).

Two signature schemes, chosen per receiver (`signature:` in the watchlist):
- `vigie` (the default): `X-Vigie-Signature: sha256=<hex>` where hex = HMAC-SHA256(secret,
  "<X-Vigie-Timestamp>.<raw body>").
- `standard`: Standard Webhooks (standardwebhooks.com), which existing verifier libraries
  check: `webhook-id` (the notification key, the same on every retry), `webhook-timestamp`
  (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
  The secret is `whsec_` + base64 of the key bytes. To rotate, give several secrets
  separated by spaces: each signs, and the signatures are sent space-separated, so a
  receiver holding either the old or the new secret accepts the message.
Signing the timestamp with the body lets a receiver reject replays older than a few minutes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from pipeline.notify.base import post
from pipeline.notify.render import Message, storyline_sentence
from pipeline.settings import Secret

__all__ = ["WebhookReceiver", "webhook_body", "sign", "verify_signature", "sign_standard",
           "standard_keys", "SIGNATURE_SCHEMES"]

SIGNATURE_HEADER = "X-Vigie-Signature"
TIMESTAMP_HEADER = "X-Vigie-Timestamp"
KEY_HEADER = "X-Vigie-Notification-Key"
SIGNATURE_SCHEMES = ("vigie", "standard")
STANDARD_SECRET_PREFIX = "whsec_"
# The Standard Webhooks spec asks for secrets of 24 to 64 random bytes.
STANDARD_KEY_BYTES = (24, 64)


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


def standard_keys(secrets: str) -> list[bytes]:
    """The signing keys of one or more space-separated `whsec_<base64>` secrets.

    ValueError says what is wrong without showing any secret.
    """
    keys = []
    for position, secret in enumerate(secrets.split(), start=1):
        if not secret.startswith(STANDARD_SECRET_PREFIX):
            raise ValueError(f"secret #{position} must start with {STANDARD_SECRET_PREFIX} "
                             "(Standard Webhooks: whsec_ + base64 of the key)")
        try:
            key = base64.b64decode(secret[len(STANDARD_SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"secret #{position}: not base64 after {STANDARD_SECRET_PREFIX}")\
                from None
        low, high = STANDARD_KEY_BYTES
        if not low <= len(key) <= high:
            raise ValueError(f"secret #{position}: the key must be {low} to {high} bytes, "
                             f"got {len(key)}")
        keys.append(key)
    if not keys:
        raise ValueError("no secret given")
    return keys


def sign_standard(keys: Sequence[bytes], message_id: str, timestamp: str, body: bytes) -> str:
    """The `webhook-signature` header: `v1,<base64>` per key, space-separated."""
    content = f"{message_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
        for key in keys)


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
        "storyline_summary": storyline_sentence(message),
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
    secret: Secret  # `standard`: one or more space-separated whsec_ secrets
    scheme: str = "vigie"
    type: str = "webhook"

    def __post_init__(self) -> None:
        if self.scheme not in SIGNATURE_SCHEMES:
            raise ValueError(f"signature scheme must be one of {', '.join(SIGNATURE_SCHEMES)}")
        if self.scheme == "standard":
            standard_keys(self.secret.reveal())  # refuse a bad secret now, not at send

    @property
    def rate_limit_key(self) -> None:
        return None

    def secrets(self) -> tuple[str, ...]:
        return (self.url.reveal(), *self.secret.reveal().split())

    async def send(self, message: Message, http: aiohttp.ClientSession) -> int:
        body = orjson.dumps(webhook_body(message))
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", KEY_HEADER: message.key}
        if self.scheme == "standard":
            keys = standard_keys(self.secret.reveal())
            headers.update({
                "webhook-id": message.key,  # the same on every retry: receivers dedup by it
                "webhook-timestamp": timestamp,
                "webhook-signature": sign_standard(keys, message.key, timestamp, body),
            })
        else:
            headers.update({TIMESTAMP_HEADER: timestamp,
                            SIGNATURE_HEADER: sign(self.secret.reveal(), timestamp, body)})
        return await post(http, self.url.reveal(), body, headers, self.secrets())
