"""Slack incoming webhooks: a Block Kit message with a plain-text fallback.

Slack allows about one message per second per webhook and answers 429 with Retry-After
beyond that; the dispatcher's rate limiter (keyed by `rate_limit_key`) and its retry
loop honour both. The webhook URL is the credential, so it is a `Secret` and never
appears in a log line or an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
import orjson

from pipeline.notify.base import post
from pipeline.notify.render import (
    Message,
    local_time,
    render_text,
    storyline_rows,
    storyline_sentence,
    subsided_sentence,
    trend_line,
)
from pipeline.records import human_number
from pipeline.settings import Secret

__all__ = ["SlackReceiver", "slack_payload", "mrkdwn_escape"]

_SECTION_LIMIT = 2900  # Slack rejects section text over 3000 characters


def mrkdwn_escape(text: str) -> str:
    """Slack's three control characters; everything else is shown as typed.

    Every field Slack parses goes through it (the `text` fallback as much as the blocks):
    a poster's `<!channel>`, `<@U123>` or `<https://evil|click here>` is shown, not obeyed.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(url: str, label: str) -> str:
    # `|` and `>` would end the link early; percent-encode them in the URL.
    safe = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe}|{mrkdwn_escape(label).replace('|', '¦')}>"


def _clip(text: str) -> str:
    return text if len(text) <= _SECTION_LIMIT else text[: _SECTION_LIMIT - 1] + "…"


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack still renders our own *bold* and <url|label>, but does not turn a
    # poster's bare "#channel", "@name" or URL into a link or mention.
    return {"type": "mrkdwn", "text": _clip(text), "verbatim": True}


_DATE = "\x00date{}\x00"  # stands for a date token until the text around it is escaped


def date_token(moment: datetime, fallback_zone: str = "UTC") -> str:
    """Slack writes the time in each reader's own zone; the fallback is for old clients."""
    epoch = int(moment.timestamp())
    fallback = local_time(moment, fallback_zone, "%H:%M %Z")
    return f"<!date^{epoch}^{{time}}|{mrkdwn_escape(fallback)}>"


def _with_dates(build: Callable[[Callable[[datetime | None], str]], str],
                zone: str = "UTC") -> str:
    """Text built by `build(when)`, escaped, its times then made Slack date tokens (their
    fallback written in `zone`, the receiver's)."""
    moments: list[datetime] = []

    def when(moment: datetime | None) -> str:
        if moment is None:
            return ""
        moments.append(moment)
        return _DATE.format(len(moments) - 1)

    text = mrkdwn_escape(build(when))
    for index, moment in enumerate(moments):
        text = text.replace(_DATE.format(index), date_token(moment, zone))
    return text


def slack_payload(message: Message, short: bool = False) -> dict[str, Any]:
    """The message as Block Kit; `short`: only the header, where the incident stands and the
    summary (a reply in the incident's thread whose news is that the wave subsided)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}},
    ]
    # Where the incident stands first, when it is not plain "active".
    status = _with_dates(lambda when: subsided_sentence(message, when), message.timezone)
    if status:
        blocks.append({"type": "section", "text": _mrkdwn(f"*{status}*")})
    if short:
        blocks.append({"type": "section", "text": _mrkdwn(mrkdwn_escape(message.summary))})
        return {"text": _clip(mrkdwn_escape(render_text(message))), "blocks": blocks}
    # The storylines first: what happened, in one line.
    sentence = _with_dates(lambda when: storyline_sentence(message, when), message.timezone)
    if sentence:
        blocks.append({"type": "section", "text": _mrkdwn(f"*{sentence}*")})
    trend = trend_line(message)
    blocks.append({
        "type": "section",
        "text": _mrkdwn(
            f"*{mrkdwn_escape(message.summary)}*\n"
            f"Sentiment: {mrkdwn_escape(message.sentiment_line)}"
            + (f"\n{mrkdwn_escape(trend)}" if trend else "")
        ),
    })
    if message.storylines:
        rows = _with_dates(lambda when: "\n".join(
            f"• {row}" for row in storyline_rows(message, when)), message.timezone)
        blocks.append({"type": "context", "elements": [_mrkdwn(rows)]})
    if message.top_posts:
        lines = []
        for p in message.top_posts:
            who = f"{p.author} ({human_number(p.followers)} followers)"
            who = _link(p.url, who) if p.url else mrkdwn_escape(who)
            lines.append(f"• {who}: {mrkdwn_escape(p.text)}")
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines))})
    if message.surging_terms:
        terms = mrkdwn_escape("Surging: " + ", ".join(message.surging_terms))
        blocks.append({"type": "context", "elements": [_mrkdwn(terms)]})
    blocks.append(
        {
            "type": "section",
            "text": _mrkdwn(
                f"{_link(message.dashboard_url, 'Open the Grafana dashboard')}"
                f" · incident `{mrkdwn_escape(message.incident_id)}`"
            ),
        }
    )
    # `text` is what notifications, screen readers and old clients show; Slack parses it
    # as mrkdwn too, so it is escaped like the blocks.
    return {"text": _clip(mrkdwn_escape(render_text(message))), "blocks": blocks}


@dataclass(frozen=True)
class SlackReceiver:
    name: str
    url: Secret
    type: str = "slack"

    @property
    def rate_limit_key(self) -> str:
        # One limit per webhook, shared by receivers that use the same URL.
        return "slack:" + hashlib.sha256(self.url.reveal().encode()).hexdigest()[:16]

    def secrets(self) -> tuple[str, ...]:
        return (self.url.reveal(),)

    async def send(self, message: Message, http: aiohttp.ClientSession) -> int:
        body = orjson.dumps(slack_payload(message))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        return await post(http, self.url.reveal(), body, headers, self.secrets())
