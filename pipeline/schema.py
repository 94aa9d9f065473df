"""The post record (schema version 1): validation and normalisation.

`validate_post` checks a decoded JSON object and returns either a clean post or every
problem found, each with the field it concerns, so that a dead letter says all that is
wrong at once. `decode_post` starts from the raw Kafka bytes and adds the checks that only
bytes can fail (size, UTF-8, JSON). The format is documented in docs/records.md.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from pipeline.records import PLATFORM_ALIASES

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
PLATFORMS = frozenset(
    {"twitter", "facebook", "instagram", "mastodon", "bluesky", "reddit", "blog", "forum",
     "news", "other"}
)
ENGAGEMENT_FIELDS = ("likes", "reshares", "replies", "quotes", "views")
LINK_FIELDS = ("reply_to", "reshare_of", "quote_of")
MAX_TEXT_CHARS = 5000
# A clock a day ahead of ours is a broken source, not a post from the future.
MAX_CLOCK_SKEW = timedelta(days=1)

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
# C0/C1 control characters except tab and newline, which are ordinary in posts.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidRecord(Exception):
    """A record that a stage cannot use; `reason` is a short, bounded label for metrics."""

    def __init__(self, reason: str, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.reason = reason
        self.errors = errors


def normalise_post_text(text: str) -> tuple[str, bool]:
    """NFC, control characters removed, capped at MAX_TEXT_CHARS; returns (text, truncated)."""
    clean = _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()
    if len(clean) > MAX_TEXT_CHARS:
        return clean[:MAX_TEXT_CHARS], True
    return clean, False


def parse_timestamp(value: Any) -> datetime:
    """An aware datetime from an ISO 8601 string; raises ValueError with a user message."""
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("must include a timezone offset (e.g. +00:00 or Z)")
    try:
        # 0001-01-01T00:00:00+14:00 is year 0 in UTC, which Python cannot represent: every
        # stage that compares or buckets times would fail on it, so it is refused here.
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value[:40]!r} is out of range once converted to UTC "
                         "(years 1 to 9999)") from None
    return parsed


# The largest integer every JSON reader keeps exact (2**53 - 1); a count above it is
# not a count, and past 64 bits the producer could not even encode it.
MAX_COUNT = 9_007_199_254_740_991


def _count(value: Any) -> int | None:
    """A count in 0..MAX_COUNT, or None when the value is not one (bools are not counts)."""
    if type(value) is int:  # what JSON gives (never a bool): one test, for every post
        return value if 0 <= value <= MAX_COUNT else None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        return None
    return value


def _check_author(raw: Any, errors: list[FieldError]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        errors.append(FieldError("author", "required object with at least a handle"))
        return {}
    handle = raw.get("handle")
    if not isinstance(handle, str) or not handle.strip():
        errors.append(FieldError("author.handle", "required non-empty string"))
        handle = ""
    display = raw.get("display_name")
    if display is not None and not isinstance(display, str):
        errors.append(FieldError("author.display_name", "must be a string"))
        display = None
    followers = raw.get("followers", 0)
    if followers is None:
        followers = 0
    if _count(followers) is None:
        errors.append(FieldError("author.followers", f"must be an integer 0..{MAX_COUNT}"))
        followers = 0
    verified = raw.get("verified", False)
    if verified is None:
        verified = False
    if not isinstance(verified, bool):
        errors.append(FieldError("author.verified", "must be true or false"))
        verified = False
    handle = handle.strip().lstrip("@")
    return {
        "handle": handle,
        "display_name": display or handle,
        "followers": followers,
        "verified": verified,
    }


def _check_engagement(raw: Any, errors: list[FieldError]) -> dict[str, int]:
    engagement = dict.fromkeys(ENGAGEMENT_FIELDS, 0)
    if raw is None:
        return engagement
    if not isinstance(raw, dict):
        errors.append(FieldError("engagement", "must be an object of counts"))
        return engagement
    for name in ENGAGEMENT_FIELDS:
        value = raw.get(name, 0)
        if type(value) is int and 0 <= value <= MAX_COUNT:  # `_count`, inline: 5 a post
            engagement[name] = value
            continue
        if value is None:
            continue
        if _count(value) is None:
            errors.append(FieldError(f"engagement.{name}", f"must be an integer 0..{MAX_COUNT}"))
        else:
            engagement[name] = value
    return engagement


def validate_post(
    obj: Any, *, now: datetime | None = None, detect_language: Any = None
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Check and normalise a decoded post; returns (post, []) or (None, every error).

    `detect_language(text) -> str | None` fills a missing language; it is a parameter so
    that callers choose the detector (and tests need none).
    """
    errors: list[FieldError] = []
    if not isinstance(obj, dict):
        return None, [FieldError("$", f"a post must be a JSON object, got {type(obj).__name__}")]

    version = obj.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int):
        errors.append(FieldError("schema_version", "required integer"))
    elif version not in SUPPORTED_VERSIONS:
        errors.append(FieldError("schema_version", f"unsupported version {version}"))

    platform = obj.get("platform")
    if not isinstance(platform, str):
        errors.append(FieldError("platform", "required string"))
        platform = ""
    platform = platform.strip().lower()
    platform = PLATFORM_ALIASES.get(platform, platform)
    if platform and platform not in PLATFORMS:
        errors.append(FieldError("platform", f"unknown platform {platform[:30]!r}"))

    post_id = obj.get("id")
    if isinstance(post_id, int) and not isinstance(post_id, bool):
        post_id = str(post_id)
    if not isinstance(post_id, str) or not post_id.strip():
        errors.append(FieldError("id", "required non-empty string"))
        post_id = ""

    url = obj.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        errors.append(FieldError("url", "must be an http(s) URL"))

    author = _check_author(obj.get("author"), errors)

    raw_text = obj.get("text")
    text, truncated = "", False
    if not isinstance(raw_text, str):
        errors.append(FieldError("text", "required string"))
    else:
        text, truncated = normalise_post_text(raw_text)
        if not text:
            errors.append(FieldError("text", "empty after normalisation"))

    created_at = None
    try:
        created_at = parse_timestamp(obj.get("created_at"))
    except ValueError as exc:
        errors.append(FieldError("created_at", str(exc)))
    else:
        reference = now or datetime.now(UTC)
        if created_at - reference > MAX_CLOCK_SKEW:
            errors.append(FieldError("created_at", "more than a day in the future"))

    language = obj.get("language")
    if language is not None and (not isinstance(language, str) or not _LANGUAGE.match(language)):
        errors.append(FieldError("language", "must be an ISO 639 code such as 'fr' or 'en'"))
        language = None

    links: dict[str, str | None] = {}
    for name in LINK_FIELDS:
        value = obj.get(name)
        if value is not None and (not isinstance(value, str) or ":" not in value):
            errors.append(FieldError(name, "must be a post key 'platform:id' or null"))
            value = None
        links[name] = value

    engagement = _check_engagement(obj.get("engagement"), errors)

    if errors:
        return None, errors

    detected = False
    if language is None:
        language = detect_language(text) if detect_language else None
        detected = language is not None
    post: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "platform": platform,
        "id": post_id.strip(),
        "url": url,
        "author": author,
        "text": text,
        "text_truncated": truncated,
        "language": language or "und",
        "language_detected": detected,
        "created_at": created_at.isoformat(),
        **links,
        "engagement": engagement,
    }
    if text != raw_text:
        post["text_original"] = raw_text
    return post, []


def fill_language(post: dict[str, Any], detect_language: Any) -> None:
    """Detect the language of a post decoded without a detector (`decode_post` with
    `detect_language=None`) that gave none: the validate stage does it only for posts
    that mention a watched brand, the only ones whose language anyone reads."""
    if post["language"] == "und" and not post["language_detected"]:
        language = detect_language(post["text"])
        if language:
            post["language"], post["language_detected"] = language, True


def decode_post(
    raw: bytes | None, *, max_bytes: int, now: datetime | None = None, detect_language: Any = None
) -> dict[str, Any]:
    """Raw Kafka value -> clean post, or InvalidRecord with a reason and every error."""
    if raw is None:
        raise InvalidRecord("empty", [FieldError("$", "the record has no value")])
    if len(raw) > max_bytes:
        raise InvalidRecord(
            "oversized", [FieldError("$", f"record of {len(raw)} bytes exceeds {max_bytes}")]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRecord(
            "bad_utf8", [FieldError("$", f"invalid UTF-8 at byte {exc.start}")]
        ) from None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("bad_json", [FieldError("$", f"invalid JSON: {exc}")]) from None
    post, errors = validate_post(obj, now=now, detect_language=detect_language)
    if post is None:
        reason = "not_object" if errors and errors[0].field == "$" else "invalid_fields"
        if any(e.field == "schema_version" and "unsupported" in e.message for e in errors):
            reason = "unsupported_version"
        raise InvalidRecord(reason, errors)
    return post
