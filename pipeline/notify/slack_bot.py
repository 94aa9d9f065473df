"""Slack with a bot token (Web API, the official `slack_sdk`): one thread per incident.

The opening message is posted to the channel (`chat.postMessage`); every later message
about the incident (escalation, reminder, subsided, resolution) is a reply in its thread
(`thread_ts`), and the opening message itself is edited (`chat.update`) so that the
channel shows the incident's current state at a glance (escalated, still open, subsided,
resolved). The reply that says the wave subsided is short; the edited opening keeps the
evidence. A `status` notification (the wave is active again, or subsided again after a
flare-up, with no message due) only edits the opening: nobody is notified, but the
channel does not go on showing a state that is no longer true.

Where the opening message is: `send` returns it as the delivery's `thread`
("<channel id>/<ts>"), the alert service keeps it in the opening's `alerts.ledger` entry
(a compacted topic, so it survives restarts and moves between workers with the
partition), and hands it back in `Message.thread` for the incident's later messages.
Without one (the opening failed for good, or was sent by the webhook receiver before a
switch) a later message opens a new thread.

The token is a `Secret`: never logged, and scrubbed from every error. slack_sdk's own
retries are off: the dispatcher retries (and honours Retry-After on `ratelimited`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import partial

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from pipeline.notify.base import Delivered, NotificationError, parse_retry_after, redact
from pipeline.notify.render import Message
from pipeline.notify.slack import slack_payload
from pipeline.settings import Secret

__all__ = ["SlackBotReceiver", "DEFAULT_API_URL"]

DEFAULT_API_URL = "https://slack.com/api/"
# Web API errors worth another try; any other error (invalid_auth, channel_not_found,
# not_in_channel, msg_too_long...) will not go away by itself.
_RETRYABLE = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
              "request_timeout"}
_EDITED_ON = ("escalated", "reminder", "subsided", "resolved")
_GONE = {"thread_not_found", "message_not_found"}  # the opening was deleted
log = logging.getLogger("vigie.alert")


@dataclass(frozen=True)
class SlackBotReceiver:
    name: str
    token: Secret
    channel: str  # a channel id (C0123...) or name (#crisis)
    api_url: str = DEFAULT_API_URL
    type: str = "slack"
    edits_in_place: bool = True  # the policy may send it silent `status` edits

    @property
    def rate_limit_key(self) -> str:
        # chat.postMessage allows about one message per second per channel.
        digest = hashlib.sha256(f"{self.token.reveal()}|{self.channel}".encode()).hexdigest()
        return "slack:" + digest[:16]

    def secrets(self) -> tuple[str, ...]:
        return (self.token.reveal(),)

    def _client(self, http: aiohttp.ClientSession) -> AsyncWebClient:
        base = self.api_url if self.api_url.endswith("/") else self.api_url + "/"
        return AsyncWebClient(token=self.token.reveal(), base_url=base, session=http,
                              retry_handlers=[])

    async def send(self, message: Message, http: aiohttp.ClientSession) -> Delivered:
        client = self._client(http)
        payload = slack_payload(message)
        opening = _parse_thread(message.thread)
        if opening is None and message.kind == "status":
            # No opening message of ours to edit (it failed for good, or another receiver
            # type sent it): a silent edit has nothing to do.
            return Delivered(None)
        try:
            if opening is None:
                response = await client.chat_postMessage(channel=self.channel, **payload)
                thread = f"{response['channel']}/{response['ts']}"
                return Delivered(int(response.status_code), thread)
            channel, ts = opening
            if message.kind == "status":
                await self._edit_opening(client, channel, ts, payload, message.key)
                return Delivered(200, message.thread)
            reply = slack_payload(message, short=True) if message.kind == "subsided" \
                else payload
            try:
                response = await client.chat_postMessage(channel=channel, thread_ts=ts,
                                                         **reply)
            except SlackApiError as exc:
                if _code(exc) not in _GONE:
                    raise
                # The opening message was deleted: this one starts a new thread.
                response = await client.chat_postMessage(channel=self.channel, **payload)
                return Delivered(int(response.status_code),
                                 f"{response['channel']}/{response['ts']}")
            # The edit comes after the reply is recorded as sent (Delivered.follow_up): a
            # timeout or a crash during the edit must not post the reply again.
            edit = (partial(self._edit_opening, client, channel, ts, payload, message.key)
                    if message.kind in _EDITED_ON else None)
            return Delivered(int(response.status_code), message.thread, follow_up=edit)
        except SlackApiError as exc:
            raise self._error(exc) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise NotificationError(
                f"{type(exc).__name__}: {redact(str(exc), self.secrets())}"[:300],
                retryable=True) from None

    async def _edit_opening(self, client: AsyncWebClient, channel: str, ts: str,
                            payload: dict, key: str) -> None:
        """The channel shows the opening message: make it say where things stand. After a
        reply, this runs once the reply is recorded as sent; a failed edit is logged, not
        retried (a retry would post the reply twice)."""
        try:
            await client.chat_update(channel=channel, ts=ts, **payload)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            reason = _code(exc) if isinstance(exc, SlackApiError) else type(exc).__name__
            log.warning("%s: opening message not edited (%s)", key,
                        redact(reason, self.secrets()))

    def _error(self, exc: SlackApiError) -> NotificationError:
        response = exc.response
        status = getattr(response, "status_code", None)
        code = _code(exc)
        headers = getattr(response, "headers", {}) or {}
        retry_after = parse_retry_after(
            next((v for k, v in headers.items() if k.lower() == "retry-after"), None))
        retryable = code in _RETRYABLE or status in (408, 429) or (status or 0) >= 500
        reason = redact(f"Slack API {status}: {code or 'error'}", self.secrets())
        return NotificationError(reason, retryable=retryable, status=status,
                             retry_after=retry_after)


def _code(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "")
    except (AttributeError, TypeError):
        return ""


def _parse_thread(thread: str | None) -> tuple[str, str] | None:
    if not thread or "/" not in thread:
        return None
    channel, _, ts = thread.partition("/")
    return (channel, ts) if channel and ts else None
