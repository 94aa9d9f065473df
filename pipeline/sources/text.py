"""Small conversions every connector needs: HTML to text, platform dates to ISO 8601."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

__all__ = ["html_to_text", "iso_from_epoch", "iso_from_text", "new_post"]

_BLOCK_TAGS = {"p", "div", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "pre"}
_SKIP_TAGS = {"script", "style"}


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self._skipping += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCK_TAGS and self.parts:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Visible text of an HTML fragment (Mastodon content, RSS descriptions), paragraphs kept."""
    if "<" not in markup and "&" not in markup:
        return markup.strip()
    collector = _TextCollector()
    collector.feed(markup)
    collector.close()
    text = "".join(collector.parts)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return html.unescape("\n".join(out).strip())


def iso_from_epoch(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def iso_from_text(value: Any) -> str | None:
    """An ISO 8601 (with `Z`) or RFC 822 date as ISO 8601 in UTC; None if unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    moment: datetime | None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def new_post(
    *,
    platform: str,
    post_id: str,
    url: str | None,
    handle: str,
    display_name: str | None,
    followers: int,
    verified: bool,
    text: str,
    language: str | None,
    created_at: str,
    reply_to: str | None = None,
    reshare_of: str | None = None,
    quote_of: str | None = None,
    likes: int = 0,
    reshares: int = 0,
    replies: int = 0,
    quotes: int = 0,
    views: int | None = None,
) -> dict[str, Any]:
    """A post in the schema of docs/records.md (the validate stage normalises text)."""
    engagement: dict[str, int] = {
        "likes": max(0, int(likes or 0)),
        "reshares": max(0, int(reshares or 0)),
        "replies": max(0, int(replies or 0)),
        "quotes": max(0, int(quotes or 0)),
    }
    if views is not None:
        engagement["views"] = max(0, int(views))
    return {
        "schema_version": 1,
        "platform": platform,
        "id": post_id,
        "url": url,
        "author": {
            "handle": handle,
            "display_name": display_name,
            "followers": max(0, int(followers or 0)),
            "verified": bool(verified),
        },
        "text": text,
        "language": language or None,
        "created_at": created_at,
        "reply_to": reply_to,
        "reshare_of": reshare_of,
        "quote_of": quote_of,
        "engagement": engagement,
    }
