from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from pipeline.records import post_key
from pipeline.schema import MAX_TEXT_CHARS, InvalidRecord, decode_post, validate_post

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def good(**changes):
    post = {
        "schema_version": 1, "platform": "x", "id": 42,
        "url": "https://x.com/jdoe/status/42",
        "author": {"handle": "@jdoe", "display_name": "J. Doe", "followers": 1200,
                   "verified": False},
        "text": "Orange est en panne", "language": "fr",
        "created_at": "2026-11-28T11:59:00Z",
        "reshare_of": "twitter:41",
        "engagement": {"likes": 3, "views": 240},
    }
    post.update(changes)
    return post


def test_a_good_post_is_normalised():
    post, errors = validate_post(good(), now=NOW)
    assert errors == []
    assert post["platform"] == "twitter", "x is stored as twitter"
    assert post["id"] == "42" and post_key(post) == "twitter:42"
    assert post["author"]["handle"] == "jdoe"
    assert post["created_at"] == "2026-11-28T11:59:00+00:00"
    assert post["engagement"] == {"likes": 3, "reshares": 0, "replies": 0, "quotes": 0,
                                  "views": 240}
    assert "text_original" not in post and post["text_truncated"] is False


def test_every_problem_is_reported_with_its_field():
    bad = good(platform="myspace", id="", text=7, created_at="2026-11-28T11:59:00",
               language="French", reply_to="nokey",
               author={"handle": "", "followers": -1, "verified": "yes"},
               engagement={"likes": 1.5})
    post, errors = validate_post(bad, now=NOW)
    assert post is None
    assert {e.field for e in errors} == {
        "platform", "id", "text", "created_at", "language", "reply_to", "author.handle",
        "author.followers", "author.verified", "engagement.likes"}
    naive = next(e for e in errors if e.field == "created_at")
    assert "timezone" in naive.message


def test_text_is_nfc_without_control_characters_and_keeps_the_original():
    decomposed = "Socie\u0301te\u0301 Ge\u0301ne\u0301rale\x00\x07 a\tb"
    post, _ = validate_post(good(text=decomposed), now=NOW)
    assert post["text"] == "Société Générale a\tb"
    assert post["text_original"] == decomposed


def test_long_text_is_capped_and_flagged():
    post, _ = validate_post(good(text="é" * (MAX_TEXT_CHARS + 10)), now=NOW)
    assert len(post["text"]) == MAX_TEXT_CHARS and post["text_truncated"] is True
    assert len(post["text_original"]) == MAX_TEXT_CHARS + 10


def test_missing_language_is_detected_by_the_given_detector():
    post, _ = validate_post({k: v for k, v in good().items() if k != "language"}, now=NOW,
                            detect_language=lambda text: "fr")
    assert post["language"] == "fr" and post["language_detected"] is True


def test_posts_from_the_future_are_rejected():
    _, errors = validate_post(good(created_at="2026-12-01T00:00:00+00:00"), now=NOW)
    assert [e.field for e in errors] == ["created_at"]


@pytest.mark.parametrize(
    "created_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
)
def test_a_time_out_of_range_in_utc_is_rejected_with_its_reason(created_at):
    # Valid ISO 8601 with a valid offset, but year 0 (or 10000) once in UTC: the detector
    # crashed on it, so validation refuses it and says why.
    _, errors = validate_post(good(created_at=created_at), now=NOW)
    assert [e.field for e in errors] == ["created_at"]
    assert "out of range once converted to UTC" in errors[0].message


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", "bad_utf8"),
        (b"{nope", "bad_json"),
        (b"[1, 2]", "not_object"),
        (orjson.dumps(good(schema_version=2)), "unsupported_version"),
        (orjson.dumps(good(text="")), "invalid_fields"),
        (b"x" * 2000, "oversized"),
        (None, "empty"),
    ],
)
def test_decode_post_names_the_reason(raw, reason):
    with pytest.raises(InvalidRecord) as caught:
        decode_post(raw, max_bytes=1000, now=NOW)
    assert caught.value.reason == reason
    assert caught.value.errors


def test_real_language_detection_on_french_and_english():
    from pipeline.language import detect_language

    assert detect_language("Le service client ne répond plus depuis deux jours, c'est "
                           "inadmissible") == "fr"
    assert detect_language("The customer service has not answered for two days, this is "
                           "unacceptable") == "en"


def test_counts_past_what_json_keeps_exact_are_refused():
    from pipeline.schema import MAX_COUNT

    post, errors = validate_post(
        good(author={"handle": "x", "followers": 10**30}, engagement={"views": MAX_COUNT + 1}),
        now=NOW,
    )
    assert post is None
    assert {e.field for e in errors} == {"author.followers", "engagement.views"}
    post, _ = validate_post(good(author={"handle": "x", "followers": MAX_COUNT}), now=NOW)
    assert post is not None and post["author"]["followers"] == MAX_COUNT


class _Count(int):
    """An int that is not exactly int (JSON never gives one; a caller's object may)."""


@pytest.mark.parametrize(("value", "kept"), [
    (0, 0), (7, 7), (9_007_199_254_740_991, 9_007_199_254_740_991), (_Count(5), 5),
    (None, 0), (9_007_199_254_740_992, None), (-1, None), (True, None), (False, None),
    (1.0, None), ("3", None), (_Count(-2), None),
])
def test_every_count_is_kept_or_refused_with_its_field_and_message(value, kept):
    """Followers and each engagement count: the value kept (None: 0), or one error of
    that field with the same message (the common case has its own fast test)."""
    from pipeline.schema import ENGAGEMENT_FIELDS, MAX_COUNT

    message = f"must be an integer 0..{MAX_COUNT}"
    for name in ("followers", *ENGAGEMENT_FIELDS):
        field = f"author.{name}" if name == "followers" else f"engagement.{name}"
        record = good(author={"handle": "x", "followers": value}) if name == "followers" \
            else good(engagement={name: value})
        post, errors = validate_post(record, now=NOW)
        if kept is None:
            assert post is None and [e.as_dict() for e in errors] == [
                {"field": field, "message": message}], field
        else:
            counts = post["author"] if name == "followers" else post["engagement"]
            assert counts[name] == kept and type(counts[name]) is type(value or 0), field


def test_the_handle_and_platform_are_cleaned_once_and_the_same_way():
    post, _ = validate_post(good(platform="  X ", author={"handle": "  @jdoe "}), now=NOW)
    assert post["platform"] == "twitter"
    assert post["author"]["handle"] == post["author"]["display_name"] == "jdoe"
    post, errors = validate_post(good(platform=" MySpace "), now=NOW)
    assert [e.as_dict() for e in errors] == [
        {"field": "platform", "message": "unknown platform 'myspace'"}]
