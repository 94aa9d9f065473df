"""Size limits (pipeline/limits.py): dead letters always fit, settings stay coherent."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from pipeline.deadletter import dead_letter, dead_letter_key, original_bytes, too_large_errors
from pipeline.limits import (
    DEAD_LETTER_ORIGINAL_BYTES,
    MAX_MESSAGE_BYTES,
    MAX_POST_BYTES_CEILING,
    RECORD_OVERHEAD_BYTES,
    fits,
)
from pipeline.schema import FieldError
from pipeline.settings import SettingError, WorkerSettings
from pipeline.sources.push import PushSettings


def letter_of(original: bytes | None, key: bytes | None = b"forum:1",
              errors: list[FieldError] | None = None) -> dict:
    value = dead_letter("validate", errors or [FieldError("$", "bad")], key=key,
                        original=original, topic="posts.raw", partition=2, offset=7,
                        reason="oversized", dlq="posts.dlq")
    assert fits(dead_letter_key(key), value), "a dead letter always fits"
    return orjson.loads(value)


def test_a_small_original_is_kept_byte_for_byte_with_its_size_and_hash():
    original = b'{"text": "caf\xc3\xa9"}'
    letter = letter_of(original)
    assert original_bytes(letter) == original
    assert letter["original_size"] == len(original)
    assert letter["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert letter["original_truncated"] is False
    assert letter["schema_version"] == 2


@pytest.mark.parametrize("size", [800_000, 1_900_000, 8_000_000])
def test_a_large_original_keeps_a_bounded_prefix_its_size_and_hash(size):
    original = bytes(range(256)) * (size // 256)
    letter = letter_of(original)
    assert original_bytes(letter) == original[:DEAD_LETTER_ORIGINAL_BYTES]
    assert letter["original_truncated"] is True
    assert letter["original_size"] == len(original)
    assert letter["original_sha256"] == hashlib.sha256(original).hexdigest()


def test_a_huge_key_and_many_long_errors_are_bounded_too():
    errors = [FieldError("f" * 5000, "m" * 50_000) for _ in range(500)]
    letter = letter_of(b"x" * 3_000_000, key=b"k" * 2_000_000, errors=errors)
    assert len(letter["key"]) == 1024
    assert len(letter["errors"]) == 51 and letter["errors"][-1]["message"] == \
        "more errors not listed"


def test_no_original():
    letter = letter_of(None)
    assert letter["original"] is None and letter["original_size"] is None


def test_fits_counts_key_value_and_overhead():
    room = MAX_MESSAGE_BYTES - RECORD_OVERHEAD_BYTES
    assert fits(b"k", b"v" * (room - 1))
    assert not fits(b"k", b"v" * room)
    assert fits(None, None)


def test_too_large_errors_names_the_size_topic_and_limit():
    [error] = too_large_errors(1_234_567, "posts.valid")
    assert "1234567 bytes" in error.message and "posts.valid" in error.message
    assert str(MAX_MESSAGE_BYTES) in error.message


def test_the_post_limit_cannot_exceed_what_a_record_can_carry(monkeypatch):
    monkeypatch.setenv("VIGIE_MAX_RECORD_BYTES", str(MAX_POST_BYTES_CEILING + 1))
    with pytest.raises(SettingError, match="VIGIE_MAX_RECORD_BYTES"):
        WorkerSettings.from_env()
    monkeypatch.setenv("VIGIE_MAX_RECORD_BYTES", str(MAX_POST_BYTES_CEILING))
    assert WorkerSettings.from_env().max_record_bytes == MAX_POST_BYTES_CEILING


def test_the_push_body_limit_holds_at_least_one_post(monkeypatch):
    monkeypatch.setenv("VIGIE_MAX_RECORD_BYTES", "300000")
    monkeypatch.setenv("VIGIE_INGEST_MAX_BYTES", "200000")
    with pytest.raises(SettingError, match="VIGIE_INGEST_MAX_BYTES"):
        PushSettings.from_env()
    monkeypatch.delenv("VIGIE_INGEST_MAX_BYTES")
    settings = PushSettings.from_env()
    assert settings.max_record_bytes == 300_000 and settings.max_bytes >= 300_000
