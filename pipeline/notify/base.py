"""What all receivers share: the receiver interface, delivery errors, the HTTP post."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import aiohttp

from pipeline.notify.render import Message

__all__ = ["Delivered", "NotificationError", "Receiver", "post", "parse_retry_after", "redact"]


@dataclass(frozen=True)
class Delivered:
    """A successful send that leaves something to remember: the HTTP status, and where
    the message is (`thread`, e.g. Slack's "<channel>/<ts>"), so that the incident's
    later messages can reply to it. A plain status (int or None) means nothing to keep."""

    status: int | None
    thread: str | None = None
    # Work left after the delivery, done once it is recorded as sent and never retried
    # (the Slack bot's edit of its opening message after a reply): a timeout or a crash
    # there must not send the delivered message again.
    follow_up: Callable[[], Awaitable[None]] | None = field(default=None, compare=False,
                                                            repr=False)


class NotificationError(Exception):
    """One failed attempt. `retryable` says whether trying again may help.

    The reason never holds a secret: receivers build it from status codes and short,
    redacted response text, never from URLs or keys.
    """

    def __init__(
        self,
        reason: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


class Receiver(Protocol):
    """One configured destination (a name from the watchlist's `receivers:`)."""

    name: str
    type: str  # slack | email | webhook | pagerduty

    @property
    def rate_limit_key(self) -> str | None:
        """Receivers sharing this key share one send-rate limit (None: no limit)."""
        ...

    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so that error text can be scrubbed of them."""
        ...

    async def send(
        self, message: Message, http: aiohttp.ClientSession
    ) -> int | None | Delivered:
        """Deliver once; return the status code (None when not HTTP), or `Delivered` when
        there is a thread to remember; raise NotificationError on failure."""
        ...


def redact(text: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (RFC 9110: delay-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    secrets: tuple[str, ...],
) -> int:
    """POST and classify the answer: 2xx ok; 429, 408 and 5xx retryable; other 4xx final."""
    try:
        async with http.post(url, data=body, headers=headers, allow_redirects=False) as response:
            status = response.status
            if 200 <= status < 300:
                await response.read()
                return status
            text = (await response.text(errors="replace"))[:200]
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
    except aiohttp.ClientError as exc:
        # aiohttp's messages can name the URL (a Slack webhook URL is a secret): keep
        # only the exception type and a scrubbed message.
        raise NotificationError(
            f"{type(exc).__name__}: {redact(str(exc), secrets)}", retryable=True
        ) from None
    reason = redact(f"HTTP {status}: {' '.join(text.split())}", secrets)
    retryable = status in (408, 429) or status >= 500
    raise NotificationError(reason, retryable=retryable, status=status, retry_after=retry_after)
