"""Which posts were already passed on: a bounded, compact record of post keys by time.

Sources resend after reconnects, producers retry, and an at-least-once stage re-reads
what it had not committed when it crashed: a post seen again (same `platform:id`)
within VIGIE_DEDUP_HOURS must count once. The score stage keeps one `SeenPosts` per
partition of posts.valid (which is keyed by post key, so every copy of a post lands on
the same partition).

Why not a table of keys: the dict of a Faust table costs 600-700 bytes of memory a post
and grows until its window expires (bench/RESULTS.md). Here a post costs one 64-bit hash
of its key, kept in the bucket of its `created_at` (a copy of a post carries the same
`created_at`, so one bucket answers), in a set while the bucket is recent and in a
sorted array of 8 bytes an entry once it is older (late posts still land in a small set).
Buckets more than the horizon older than the newest post seen are dropped, and at most
`max_keys` hashes are kept: past that the oldest buckets go first (a duplicate that old
then passes, and is counted by the caller). "Newest" never runs ahead of the wall clock: a
post dated a day ahead (a source with a broken clock) is kept in its own bucket but does
not make the last day's buckets look old. Two different keys share a 64-bit hash with
probability about n²/2⁶⁵: one in 10⁵ for 20 million keys, i.e. practically never.
"""

from __future__ import annotations

import hashlib
import time
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

__all__ = ["SeenPosts", "bucket_width_s", "decode_hashes", "encode_hashes", "key_hash"]

# A bucket of at most ten minutes: its set (about 60 bytes an entry) is what a burst of
# recent posts costs before it is compacted into the array (8 bytes an entry).
MAX_BUCKET_S = 600.0


def key_hash(key: str) -> int:
    """The 64-bit hash a post key is remembered by (stable across processes)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")


def encode_hashes(hashes: Iterable[int]) -> bytes:
    """Hashes as little-endian unsigned 64-bit integers (the changelog's value)."""
    packed = array("Q", hashes)
    if packed.itemsize != 8:  # pragma: no cover - every platform Vigie runs on has 8
        raise RuntimeError("array('Q') is not 64-bit here")
    return packed.tobytes()


def decode_hashes(value: bytes) -> array:
    packed = array("Q")
    packed.frombytes(value)
    return packed


def bucket_width_s(horizon_s: float) -> float:
    """Buckets of ten minutes, or a quarter of a shorter horizon."""
    return max(1.0, min(MAX_BUCKET_S, horizon_s / 4))


@dataclass
class _Bucket:
    recent: set[int] = field(default_factory=set)
    compact: array = field(default_factory=lambda: array("Q"))  # sorted

    def __contains__(self, value: int) -> bool:
        if value in self.recent:
            return True
        index = bisect_left(self.compact, value)
        return index < len(self.compact) and self.compact[index] == value

    def __len__(self) -> int:
        return len(self.recent) + len(self.compact)

    def freeze(self) -> None:
        if self.recent:
            self.compact = array("Q", sorted({*self.compact, *self.recent}))
            self.recent = set()


@dataclass
class SeenPosts:
    """Post-key hashes seen within `horizon_s` of the newest post's time (epoch seconds).

    >>> seen = SeenPosts(horizon_s=3600.0)
    >>> seen.add(key_hash("x:1"), 1000.0), seen.add(key_hash("x:1"), 1000.0)
    (True, False)
    """

    horizon_s: float
    max_keys: int = 20_000_000
    wall_clock: Callable[[], float] = time.time
    width_s: float = field(init=False)
    buckets: dict[int, _Bucket] = field(default_factory=dict, init=False)
    newest: int | None = field(default=None, init=False)
    size: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.width_s = bucket_width_s(self.horizon_s)

    def bucket_of(self, at_s: float) -> int:
        return int(at_s // self.width_s)

    def too_old(self, bucket: int) -> bool:
        """A post older than the horizon behind the newest: its bucket is gone."""
        return self.newest is not None and \
            (self.newest - bucket) * self.width_s > self.horizon_s + self.width_s

    def add(self, value: int, at_s: float) -> bool:
        """Remember `value` at time `at_s`; False when it was already there (a duplicate).
        A post older than the horizon cannot be checked and passes (True, not kept)."""
        return self.place(value, at_s)[0]

    def place(self, value: int, at_s: float) -> tuple[bool, int | None]:
        """`add`, also giving the bucket `value` was newly kept in (None: not kept)."""
        bucket = self.bucket_of(at_s)
        if self.too_old(bucket):
            return True, None
        if self.contains(value, bucket):
            return False, None
        self.insert(bucket, [value])
        return True, bucket

    def contains(self, value: int, bucket: int) -> bool:
        found = self.buckets.get(bucket)
        return found is not None and value in found

    def seen_between(self, value: int, from_s: float, to_s: float) -> bool:
        """Whether `value` was kept at any time from `from_s` to `to_s` (for a caller whose
        copies come at different times, such as a record re-sent later)."""
        first, last = self.bucket_of(from_s), self.bucket_of(to_s)
        if last - first > len(self.buckets):
            return any(value in contents for bucket, contents in self.buckets.items()
                       if first <= bucket <= last)
        return any(self.contains(value, bucket) for bucket in range(first, last + 1))

    def insert(self, bucket: int, values: Iterable[int]) -> None:
        """Add hashes to a bucket (also what a restart replays from the changelog)."""
        if self.too_old(bucket):
            return
        target = self.buckets.get(bucket)
        if target is None:
            target = self.buckets[bucket] = _Bucket()
        before = len(target.recent)
        target.recent.update(values)
        self.size += len(target.recent) - before
        newest = min(bucket, self.bucket_of(self.wall_clock()))
        if self.newest is None or newest > self.newest:
            self.newest = newest

    def expire(self) -> list[int]:
        """Drop buckets past the horizon (and the oldest ones beyond `max_keys`), compact
        those no longer recent; returns the buckets dropped."""
        if self.newest is None:
            return []
        dropped = [bucket for bucket in self.buckets if self.too_old(bucket)]
        ordered = sorted(bucket for bucket in self.buckets if bucket not in dropped)
        size = self.size - sum(len(self.buckets[bucket]) for bucket in dropped)
        while size > self.max_keys and len(ordered) > 1:
            oldest = ordered.pop(0)
            dropped.append(oldest)
            size -= len(self.buckets[oldest])
        for bucket in dropped:
            del self.buckets[bucket]
        for bucket, contents in self.buckets.items():
            if bucket < self.newest - 1:
                contents.freeze()
        self.size = sum(len(contents) for contents in self.buckets.values())
        return dropped
