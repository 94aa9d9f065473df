"""`unpack_int8` (a mention's sentence vector) gives bit for bit the floats, and the
errors, of its first definition (kept here as the reference)."""

from __future__ import annotations

import base64
import math
import random
import struct

import pytest

from models.detection.storylines import MAX_VECTOR_DIMENSIONS, unpack_int8


def reference_unpack_int8(text: object) -> list[float]:
    if not isinstance(text, str):
        raise ValueError("must be a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("is not base64") from None
    if len(raw) < 3 or len(raw) - 2 > MAX_VECTOR_DIMENSIONS:
        raise ValueError(f"holds {max(0, len(raw) - 2)} numbers, not 1-{MAX_VECTOR_DIMENSIONS}")
    (scale,) = struct.unpack("<e", raw[:2])
    if not math.isfinite(scale):
        raise ValueError("has a scale that is not a finite number")
    return [scale * x for x in struct.unpack(f"<{len(raw) - 2}b", raw[2:])]


def packed(scale_bits: bytes, numbers: bytes) -> str:
    return base64.b64encode(scale_bits + numbers).decode()


def bits(values: list[float]) -> bytes:
    """The doubles' bytes: tells -0.0 from 0.0, which == does not."""
    return struct.pack(f"<{len(values)}d", *values)


def same_as_reference(text: object) -> None:
    expected = reference_unpack_int8(text)
    got = unpack_int8(text)
    assert type(got) is list and all(type(x) is float for x in got)
    assert bits(got) == bits(expected)


def test_every_byte_under_every_kind_of_scale_unpacks_as_before():
    every_byte = bytes(range(256))
    scales = [struct.pack("<e", s) for s in (1.0, -1.0, 0.0, -0.0, 0.5 / 127, 65504.0,
                                             -65504.0, 6e-8, 1 / 3)]
    # A few hundred float16 bit patterns, subnormal and negative ones among them.
    scales += [struct.pack("<H", pattern) for pattern in range(0, 0x10000, 211)
               if math.isfinite(struct.unpack("<e", struct.pack("<H", pattern))[0])]
    for scale in scales:
        same_as_reference(packed(scale, every_byte))


def test_random_vectors_unpack_as_before():
    rng = random.Random(384)
    for _ in range(2000):
        size = rng.choice([1, 2, 8, 383, 384, 768, MAX_VECTOR_DIMENSIONS])
        scale = struct.pack("<e", rng.uniform(1e-4, 0.02) * rng.choice([1, -1]))
        same_as_reference(packed(scale, rng.randbytes(size)))


@pytest.mark.parametrize("text", [
    12, None, b"AAAA", "not base64!", "", "AA==", "AAA=",  # not a string, not base64, 0-1
    packed(struct.pack("<e", 1.0), b""),  # no number
    packed(struct.pack("<e", 1.0), bytes(MAX_VECTOR_DIMENSIONS + 1)),  # too many
    packed(struct.pack("<e", math.inf), b"\x01"), packed(struct.pack("<e", -math.inf), b"\x01"),
    packed(struct.pack("<e", math.nan), b"\x01\x02"),
])
def test_malformed_vectors_raise_the_same_errors(text):
    with pytest.raises(ValueError) as expected:
        reference_unpack_int8(text)
    with pytest.raises(ValueError) as got:
        unpack_int8(text)
    assert str(got.value) == str(expected.value)
