"""What every receiver says about an incident, built once from the incident event.

Pure: no I/O. Receivers only choose a presentation (Slack blocks, email text/HTML, JSON)
for the `Message` built here, so the numbers are the same everywhere.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.records import human_number, wave_summary

__all__ = [
    "KINDS",
    "Message",
    "PostLine",
    "build_message",
    "grafana_link",
    "safe_url",
    "summary_sentence",
    "render_text",
    "reader_time",
    "trend_line",
    "storyline_rows",
    "render_html",
    "one_line",
    "readable",
    "StorylineLine",
    "TrendPoint",
    "local_time",
    "sparkline",
    "storyline_sentence",
    "subsided_sentence",
]

# `status`: a silent edit where the incident is shown (Slack bot's opening message).
KINDS = ("opened", "escalated", "reminder", "subsided", "status", "resolved", "test")

_TITLE_VERBS = {
    "opened": "Negative wave",
    "escalated": "Escalated",
    "reminder": "Still open",
    "subsided": "Subsided",
    "status": "Active again",  # or "Subsided", by the event's status (build_message)
    "resolved": "Resolved",
    "test": "Test alert",
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")
# Invisible characters a reader cannot see but that change what is seen: every Unicode
# format character (category Cf: direction overrides, embeddings and isolates U+202A-202E
# and U+2066-2069, marks U+200E/200F/061C, zero-width space U+200B, word joiner, BOM
# U+FEFF, tag characters...) plus the blank-looking fillers used for "empty" names.
# "Evil \u202emoc.elgoog\u202c" would otherwise read "Evil google.com".
_FILLERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0")
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ, ZWJ
_POST_TEXT_LIMIT = 280


@dataclass(frozen=True)
class PostLine:
    """One of the top posts, with only safe, displayable values."""

    author: str
    followers: int
    text: str
    url: str | None  # None when the post's URL is not a plain http(s) link
    platform: str
    sentiment: str


@dataclass(frozen=True)
class StorylineLine:
    """One of the wave's storylines, with only safe, displayable values."""

    label: str
    headline: str
    share: float  # of the wave's negative posts
    negative_share: float  # of the storyline's own posts
    posts: int
    negative: int
    reach: int
    started_by: str  # "@handle", or "" when unknown
    started_at: datetime | None
    top_author: str
    top_followers: int
    top_url: str | None


@dataclass(frozen=True)
class TrendPoint:
    """One interval of the incident's trend: negative posts observed and expected."""

    start: datetime
    negative: int
    expected: float | None


@dataclass(frozen=True)
class Message:
    """One notification's content, independent of the receiver."""

    key: str
    kind: str
    incident_id: str
    brand: str
    brand_name: str
    severity: str
    title: str
    summary: str
    sentiment: dict[str, int]
    sentiment_line: str
    top_posts: tuple[PostLine, ...]
    surging_terms: tuple[str, ...]
    dashboard_url: str
    opened_at: str
    updated_at: str
    resolved_at: str | None
    event: dict[str, Any] = field(repr=False)
    storylines: tuple[StorylineLine, ...] = ()
    trend: tuple[TrendPoint, ...] = ()
    timezone: str = "UTC"  # where times are written for the reader (email, text)
    thread: str | None = None  # where the incident's opening message is (Slack bot)


def readable(value: object) -> str:
    """The text as a person will read it: no invisible character that hides or reorders it.

    Joiners (ZWNJ, ZWJ) are kept between two non-ASCII characters, where they shape
    Persian or Indic words and emoji sequences, and dropped elsewhere ("goo\u200dgle").
    """
    text = str(value)
    kept = []
    for index, char in enumerate(text):
        if char in _JOINERS:
            before = text[index - 1] if index else ""
            after = text[index + 1] if index + 1 < len(text) else ""
            if before > "\x7f" and after > "\x7f" and not _hidden(before) and not _hidden(after):
                kept.append(char)
        elif not _hidden(char):
            kept.append(char)
    return "".join(kept)


def _hidden(char: str) -> bool:
    return char in _FILLERS or char in _JOINERS or unicodedata.category(char) == "Cf"


def one_line(value: object, limit: int = 200) -> str:
    """A value made safe for one line of text (headers, titles, everything a receiver
    shows): no control characters, no invisible characters (see `readable`)."""
    text = _CONTROL.sub(" ", readable(value)).strip()
    text = re.sub(r"\s+", " ", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_url(url: object) -> str | None:
    """The URL when it is a plain http(s) link, else None (never a javascript: link)."""
    if not isinstance(url, str) or _CONTROL.search(url) or " " in url or readable(url) != url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return url


def summary_sentence(event: dict[str, Any]) -> str:
    """'312 negative posts in 10 min, 14x normal; reach 2.1M' (the detector's, if given)."""
    given = event.get("summary")
    if isinstance(given, str) and given.strip():
        return one_line(given, 300)
    observed = event.get("observed") or {}
    expected = event.get("expected") or {}
    reach = observed.get("reach_negative")
    return wave_summary(
        int(observed.get("negative", 0) or 0),
        event.get("window_minutes") or 0,
        float(expected.get("negative", 0) or 0),
        None if reach is None else float(reach),
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def grafana_link(base_url: str, dashboard: str, brand: str, event: dict[str, Any]) -> str:
    """The brand's dashboard from 30 min before the incident to 30 min after it (or now)."""
    start = _parse_time(event.get("opened_at")) or datetime.now(UTC)
    query: dict[str, str] = {"var-brand": brand}
    query["from"] = str(int((start - timedelta(minutes=30)).timestamp() * 1000))
    end = _parse_time(event.get("resolved_at"))
    query["to"] = str(int((end + timedelta(minutes=30)).timestamp() * 1000)) if end else "now"
    return f"{base_url.rstrip('/')}/d/{dashboard}/{dashboard}?{urlencode(query)}"


def _sentiment(event: dict[str, Any]) -> tuple[dict[str, int], str]:
    raw = event.get("sentiment") or {}
    counts = {label: int(raw.get(label, 0) or 0) for label in ("negative", "neutral", "positive")}
    total = sum(counts.values())
    if total == 0:
        return counts, "no scored posts"
    parts = [f"{label} {n} ({100 * n / total:.0f}%)" for label, n in counts.items()]
    return counts, " · ".join(parts)


def _post_lines(event: dict[str, Any], limit: int) -> tuple[PostLine, ...]:
    lines = []
    for post in (event.get("top_posts") or [])[:limit]:
        if not isinstance(post, dict):
            continue
        handle = post.get("author_handle") or ""
        name = post.get("author_name") or ""
        if name and handle:
            author = f"{name} (@{handle})"
        else:
            author = name or (f"@{handle}" if handle else "unknown author")
        platform = str(post.get("post_key", "")).partition(":")[0]
        lines.append(
            PostLine(
                author=one_line(author, 80),
                followers=int(post.get("followers", 0) or 0),
                text=one_line(post.get("text", ""), _POST_TEXT_LIMIT),
                url=safe_url(post.get("url")),
                platform=one_line(platform, 20),
                sentiment=one_line(post.get("sentiment", ""), 20),
            )
        )
    return tuple(lines)


def _terms(event: dict[str, Any]) -> tuple[str, ...]:
    terms = []
    for term in (event.get("surging_terms") or [])[:8]:
        if not isinstance(term, dict) or not term.get("term"):
            continue
        lift = term.get("lift")
        detail = f" ×{float(lift):.0f}" if isinstance(lift, int | float) else ""
        terms.append(one_line(f"{term['term']}{detail}", 60))
    return tuple(terms)


def local_time(moment: datetime | None, timezone: str, fmt: str = "%H:%M") -> str:
    """`moment` in `timezone` ("10:07"), with the zone's abbreviation when `fmt` has %Z."""
    if moment is None:
        return ""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone).strftime(fmt)


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float], width: int = 24) -> str:
    """'▁▁▂▅█▇' — at most `width` characters, each the largest of its share of the values
    (so a one-interval spike still shows), scaled from 0 to the largest."""
    if len(values) > width:
        size = len(values) / width
        values = [max(values[int(i * size): max(int(i * size) + 1, int((i + 1) * size))])
                  for i in range(width)]
    top = max(values, default=0)
    if top <= 0:
        return _SPARKS[0] * len(values)
    return "".join(_SPARKS[min(7, int(v / top * 7 + 0.5))] for v in values)


def _storylines(event: dict[str, Any]) -> tuple[StorylineLine, ...]:
    lines = []
    for item in (event.get("storylines") or [])[:3]:
        if not isinstance(item, dict):
            continue
        first = item.get("first_post") if isinstance(item.get("first_post"), dict) else {}
        top = item.get("top_post") if isinstance(item.get("top_post"), dict) else {}
        handle = first.get("author_handle")
        top_handle = top.get("author_handle")
        try:
            lines.append(StorylineLine(
                label=one_line(item.get("label") or item.get("headline") or "?", 60),
                headline=one_line(item.get("headline") or "", 100),
                share=float(item.get("share") or 0),
                negative_share=float(item.get("negative_share") or 0),
                posts=int(item.get("posts") or 0),
                negative=int(item.get("negative") or 0),
                reach=int(item.get("reach") or 0),
                started_by=one_line(f"@{handle}", 60) if handle else "",
                started_at=_parse_time(first.get("created_at")),
                top_author=one_line(f"@{top_handle}", 60) if top_handle else "",
                top_followers=int(top.get("followers") or 0),
                top_url=safe_url(top.get("url")),
            ))
        except (TypeError, ValueError):
            continue  # a malformed storyline is left out, not the whole alert
    return tuple(lines)


def _trend(event: dict[str, Any]) -> tuple[TrendPoint, ...]:
    points = []
    for item in event.get("trend") or []:
        if not isinstance(item, dict):
            continue
        start = _parse_time(item.get("start"))
        expected = item.get("expected_negative")
        try:
            negative = int(item.get("negative") or 0)
            expected = float(expected) if isinstance(expected, int | float) else None
        except (TypeError, ValueError):
            continue
        if start is not None:
            points.append(TrendPoint(start, negative, expected))
    return tuple(points)


def storyline_sentence(
    message: Message, when: Callable[[datetime | None], str] | None = None
) -> str:
    """'2 storylines: leak · données (78 %, started by @x at 10:07), price rise (22 %)'.

    Of more than three, the line names the top three and says how many it leaves out
    ('5 storylines: a (60 %, ...), b (18 %), c (6 %) and 2 more'), so a reader knows there
    is more to the wave than the line shows. Every receiver takes the line from here.
    `when` writes the first post's time for this reader (Slack date token, local time);
    by default the message's time zone. Empty when the incident has no storylines.
    """
    if not message.storylines:
        return ""
    when = when or (lambda moment: local_time(moment, message.timezone))
    total = len(message.event.get("storylines") or message.storylines)
    parts = []
    for index, line in enumerate(message.storylines):
        detail = f"{line.share * 100:.0f} %"
        if index == 0 and line.started_by:
            detail += f", started by {line.started_by}"
            if line.started_at is not None:
                detail += f" at {when(line.started_at)}"
        parts.append(f"{line.label} ({detail})")
    noun = "storyline" if total == 1 else "storylines"
    sentence = f"{total} {noun}: " + ", ".join(parts)
    # Counted against the total, so the line's numbers add up even when a malformed
    # storyline was left out of those shown.
    left_out = total - len(message.storylines)
    return f"{sentence} and {left_out} more" if left_out > 0 else sentence


def build_message(
    event: dict[str, Any],
    kind: str,
    key: str,
    *,
    grafana_url: str,
    grafana_dashboard: str = "vigie-brands",
    top_posts: int = 5,
    timezone: str = "UTC",
    thread: str | None = None,
) -> Message:
    """The content of notification `key` (`kind` in KINDS) about incident `event`."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    brand = one_line(event.get("brand", "?"), 64)
    brand_name = one_line(event.get("brand_name") or brand, 80)
    severity = one_line(event.get("severity", "warning"), 16)
    verb = _TITLE_VERBS[kind]
    if kind == "escalated":
        verb = f"Escalated to {severity}"
    elif kind == "status":
        verb = "Subsided" if event.get("status") == "subsided" else "Active again"
    title = one_line(f"[{severity.upper()}] {brand_name}: {verb}", 150)
    counts, sentiment_line = _sentiment(event)
    return Message(
        key=key,
        kind=kind,
        incident_id=one_line(event.get("incident_id", "?"), 128),
        brand=brand,
        brand_name=brand_name,
        severity=severity,
        title=title,
        summary=summary_sentence(event),
        sentiment=counts,
        sentiment_line=sentiment_line,
        top_posts=_post_lines(event, top_posts),
        surging_terms=_terms(event),
        dashboard_url=grafana_link(grafana_url, grafana_dashboard, brand, event),
        opened_at=one_line(event.get("opened_at", ""), 40),
        updated_at=one_line(event.get("updated_at", ""), 40),
        resolved_at=one_line(event["resolved_at"], 40) if event.get("resolved_at") else None,
        event=event,
        storylines=_storylines(event),
        trend=_trend(event),
        timezone=timezone,
        thread=thread,
    )


def reader_time(message: Message, iso: str | None) -> str:
    """An ISO time of the incident as its reader writes it: '2026-11-28 04:47 CET'."""
    moment = _parse_time(iso)
    if moment is None:
        return iso or ""
    return local_time(moment, message.timezone, "%Y-%m-%d %H:%M %Z")


def trend_line(message: Message) -> str:
    """'Negative posts, last 30 min: ▁▁▂▅█▇ (now 80, peak 95, normally about 2)' (per
    interval)."""
    if len(message.trend) < 2:
        return ""
    values = [float(p.negative) for p in message.trend]
    minutes = max(1, round((message.trend[-1].start - message.trend[0].start).total_seconds()
                           / 60 + (int(message.event.get("interval_seconds") or 60) / 60)))
    expected = [p.expected for p in message.trend if p.expected is not None]
    normal = f", normally about {expected[-1]:.0f}" if expected else ""
    return (f"Negative posts, last {minutes} min: {sparkline(values)} "
            f"(now {values[-1]:.0f}, peak {max(values):.0f}{normal})")


def storyline_rows(message: Message, when: Callable[[datetime | None], str] | None = None
                   ) -> list[str]:
    """One line per storyline: share, counts, reach, who started it, the most-reached post."""
    when = when or (lambda moment: local_time(moment, message.timezone, "%H:%M %Z"))
    rows = []
    for line in message.storylines:
        row = (f"{line.label}: {line.share * 100:.0f} % of negative posts "
               f"({line.negative} of {line.posts} posts negative), reach "
               f"{human_number(line.reach)}")
        if line.started_by:
            row += f"; started by {line.started_by}"
            if line.started_at is not None:
                row += f" at {when(line.started_at)}"
        if line.top_author:
            row += (f"; most reached: {line.top_author} "
                    f"({human_number(line.top_followers)} followers)")
        if line.headline:
            row += f" — “{line.headline}”"
        rows.append(row)
    return rows


def subsided_sentence(
    message: Message, when: Callable[[datetime | None], str] | None = None
) -> str:
    """'Calm since 10:22 CET (peak 95 negative posts in 10 min at 10:05 CET); no reminders
    while it stays calm.' for a subsided incident, else ''. `when` as in storyline_sentence."""
    event = message.event
    if event.get("status") != "subsided":
        return ""
    when = when or (lambda moment: local_time(moment, message.timezone, "%H:%M %Z"))
    sentence = "Calm"
    since = _parse_time(event.get("subsided_at"))
    if since is not None:
        sentence += f" since {when(since)}"
    peak = event.get("peak_negative")
    if isinstance(peak, int | float) and not isinstance(peak, bool):
        sentence += f" (peak {human_number(peak)} negative posts"
        if event.get("window_minutes"):
            sentence += f" in {one_line(event['window_minutes'], 8)} min"
        peak_at = _parse_time(event.get("peak_at"))
        sentence += f" at {when(peak_at)})" if peak_at is not None else ")"
    return sentence + "; no reminders while it stays calm."


def render_text(message: Message) -> str:
    """The plain-text version (email text part, Slack fallback, CLI)."""
    lines = [message.title, ""]
    if message.kind == "subsided":
        # Short: the wave is over for now, the evidence was in the earlier messages.
        lines += [subsided_sentence(message), message.summary]
        trend = trend_line(message)
        if trend:
            lines.append(trend)
        lines += ["", f"Dashboard: {message.dashboard_url}", f"Incident: {message.incident_id}"]
        return "\n".join(lines) + "\n"
    sentence = storyline_sentence(message)
    if sentence:
        lines.append(sentence)
    lines += [message.summary, f"Sentiment: {message.sentiment_line}"]
    if message.kind == "resolved" and message.resolved_at:
        lines.append(f"Resolved at {reader_time(message, message.resolved_at)} "
                     f"(opened {reader_time(message, message.opened_at)})")
    else:
        lines.append(f"Opened at {reader_time(message, message.opened_at)}, last update "
                     f"{reader_time(message, message.updated_at)}")
    trend = trend_line(message)
    if trend:
        lines.append(trend)
    if message.storylines:
        lines += ["", "Storylines:"]
        for row in storyline_rows(message):
            lines.append(f"- {row}")
    if message.top_posts:
        lines += ["", "Top posts:"]
        for post in message.top_posts:
            lines.append(f"- {post.author}, {human_number(post.followers)} followers: {post.text}")
            if post.url:
                lines.append(f"  {post.url}")
    if message.surging_terms:
        lines += ["", "Surging terms: " + ", ".join(message.surging_terms)]
    lines += ["", f"Dashboard: {message.dashboard_url}", f"Incident: {message.incident_id}"]
    return "\n".join(lines) + "\n"


def render_html(message: Message, chart_cid: str | None = None) -> str:
    """The HTML version: same content as render_text, every value escaped; `chart_cid`
    names the inline PNG of the trend (an email's related part), if any."""

    def esc(value: object) -> str:
        return html.escape(str(value), quote=True)

    parts = ["<!DOCTYPE html><html><body>", f"<h2>{esc(message.title)}</h2>"]
    if message.kind == "subsided":
        parts.append(f"<p><strong>{esc(subsided_sentence(message))}</strong></p>")
        parts.append(f"<p>{esc(message.summary)}</p>")
        if chart_cid:
            parts.append(f'<p><img src="cid:{esc(chart_cid)}" '
                         f'alt="{esc(trend_line(message))}" width="640"></p>')
        parts.append(f'<p><a href="{esc(message.dashboard_url)}">Open the dashboard</a> · '
                     f"Incident {esc(message.incident_id)}</p>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"
    sentence = storyline_sentence(message)
    if sentence:
        parts.append(f"<p><strong>{esc(sentence)}</strong></p>")
    parts += [
        f"<p><strong>{esc(message.summary)}</strong></p>",
        f"<p>Sentiment: {esc(message.sentiment_line)}</p>",
    ]
    if message.kind == "resolved" and message.resolved_at:
        parts.append(
            f"<p>Resolved at {esc(reader_time(message, message.resolved_at))} "
            f"(opened {esc(reader_time(message, message.opened_at))})</p>"
        )
    else:
        parts.append(
            f"<p>Opened at {esc(reader_time(message, message.opened_at))}, last update "
            f"{esc(reader_time(message, message.updated_at))}</p>"
        )
    if chart_cid:
        parts.append(f'<p><img src="cid:{esc(chart_cid)}" alt="{esc(trend_line(message))}" '
                     'width="640"></p>')
    if message.storylines:
        parts.append("<h3>Storylines</h3><ul>")
        for row in storyline_rows(message):
            parts.append(f"<li>{esc(row)}</li>")
        parts.append("</ul>")
    if message.top_posts:
        parts.append("<h3>Top posts</h3><ul>")
        for post in message.top_posts:
            who = f"{esc(post.author)}, {esc(human_number(post.followers))} followers"
            link = f' <a href="{esc(post.url)}">open</a>' if post.url else ""
            parts.append(f"<li>{who}: {esc(post.text)}{link}</li>")
        parts.append("</ul>")
    if message.surging_terms:
        parts.append(f"<p>Surging terms: {esc(', '.join(message.surging_terms))}</p>")
    parts.append(
        f'<p><a href="{esc(message.dashboard_url)}">Open the dashboard</a> · '
        f"Incident {esc(message.incident_id)}</p>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
