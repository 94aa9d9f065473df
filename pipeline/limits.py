"""Size limits of Vigie's records, stated once (README, "Size limits").

One chain, from the outside in:

- the push endpoint refuses a request body over `VIGIE_INGEST_MAX_BYTES` (default
  `DEFAULT_PUSH_BODY_BYTES`; never below the post limit, so one post always fits);
- a post over `VIGIE_MAX_RECORD_BYTES` (default `DEFAULT_MAX_POST_BYTES`, at most
  `MAX_POST_BYTES_CEILING`) is refused by the sources and the push endpoint, and
  dead-lettered as `oversized` by the validate stage;
- no Kafka record that Vigie writes may exceed `MAX_MESSAGE_BYTES`: it is the
  `max_request_size` of every producer (kafka-python, Faust's aiokafka, the alert writer)
  and the `max.message.bytes` of every topic Vigie creates. The ceiling on the post limit
  leaves room under it for what a stage adds to a post (the normalised text next to the
  original), so a post that passes validation can always be written on;
- a record that still cannot be written (larger than that, or refused by a topic whose
  limit is smaller) becomes a dead letter, never a crash;
- a dead letter keeps at most `DEAD_LETTER_ORIGINAL_BYTES` of the original, with the
  original's size and SHA-256, so it always fits: a record of any size that the broker
  accepted (compressed, or from another producer) ends on its output or in a dead letter.

This module imports nothing: settings, producers and topic creation all read it.
"""

from __future__ import annotations

__all__ = [
    "DEAD_LETTER_KEY_BYTES",
    "DEAD_LETTER_MESSAGE_CHARS",
    "DEAD_LETTER_MAX_ERRORS",
    "DEAD_LETTER_ORIGINAL_BYTES",
    "DEFAULT_MAX_POST_BYTES",
    "DEFAULT_PUSH_BODY_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_POST_BYTES_CEILING",
    "RECORD_OVERHEAD_BYTES",
    "fits",
    "topic_size_config",
]

# 1 MiB: Kafka's own default class of limit (a stock broker's message.max.bytes is
# 1,048,588), so topics created with it are accepted by any cluster.
MAX_MESSAGE_BYTES = 1_048_576
# Kafka's record-batch and record headers around a key and a value: 61 bytes of batch
# header and at most a few dozen of record header; kept wide so that a record `fits`
# judges writable is never refused by a producer's own size check.
RECORD_OVERHEAD_BYTES = 1_024

DEFAULT_MAX_POST_BYTES = 262_144
# A valid post carries its normalised text (at most 5000 characters, ~20 KB) beside the
# original, plus defaults: half the record limit leaves ample room for that.
MAX_POST_BYTES_CEILING = MAX_MESSAGE_BYTES // 2
DEFAULT_PUSH_BODY_BYTES = MAX_MESSAGE_BYTES

# A dead letter's bounded parts: with base64 (4/3) the original prefix takes 87,384
# bytes, the key 1 KiB, the errors at most 50 x 1000 characters: far below the limit.
DEAD_LETTER_ORIGINAL_BYTES = 65_536
DEAD_LETTER_KEY_BYTES = 1_024
DEAD_LETTER_MAX_ERRORS = 50
DEAD_LETTER_MESSAGE_CHARS = 1_000


def fits(key: bytes | None, value: bytes | None) -> bool:
    """Whether a record with this key and value can be written to a Vigie topic."""
    size = len(key or b"") + len(value or b"") + RECORD_OVERHEAD_BYTES
    return size <= MAX_MESSAGE_BYTES


def topic_size_config() -> dict[str, str]:
    """The topic configuration that lets a topic take every record that `fits`."""
    return {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
