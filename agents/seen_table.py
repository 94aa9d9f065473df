"""A bounded record of keys already handled, per partition, kept in a Faust table.

The score stage drops posts seen before (their keys); the detect stage skips mentions it
counted before (their (brand, post) pairs) when a score worker that crashed before
committing sends them again. Both keep one `pipeline.dedup.SeenPosts` per partition of
the topic they read (64-bit hashes by bucket of time, bounded by a horizon and a key
count) and survive a restart or a rebalance through a table co-partitioned with that
topic: key `partition:bucket:offset`, value the hashes one batch added to that bucket,
packed, in base64 (Faust's JSON codec holds text). A Faust table of one entry per key,
windowed or not, costs hundreds of bytes of memory a key and a changelog record a key;
this costs 8-16 bytes a key and one record per batch and bucket.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from pipeline.dedup import SeenPosts, decode_hashes, encode_hashes, key_hash

__all__ = ["SeenTable"]

SetCurrent = Callable[[Any], None]


class SeenTable:
    """One `SeenPosts` per partition this worker holds, restored from `table` the first
    time a partition is used after a (re)assignment. New keys are written with
    `write`, after what they stand for has been sent or written: a crash in between
    handles them again rather than lose them."""

    @classmethod
    def declare(cls, app: Any, name: str, help: str, partitions: int, horizon_s: float,
                max_keys: int) -> SeenTable:
        """The table on `app`, co-partitioned with the topic read (same partition count:
        partition p's hashes are restored on the worker that holds partition p), and
        forgotten at every rebalance (what this worker holds may change)."""
        table = app.Table(name, default=None, partitions=partitions, key_type=str,
                          value_type=str, help=help)
        seen = cls(table, horizon_s, max_keys)

        async def forget(_sender: Any, *_args: Any, **_kwargs: Any) -> None:
            seen.forget()

        app.on_partitions_revoked.connect(forget)
        app.on_partitions_assigned.connect(forget)
        return seen

    def __init__(self, table: Any, horizon_s: float, max_keys: int) -> None:
        self.table = table
        self.horizon_s = horizon_s
        self.max_keys = max_keys
        self.seen: dict[int, SeenPosts] = {}
        self.records: dict[tuple[int, int], list[str]] = {}  # table keys by bucket
        self.added: dict[tuple[int, int], list[int]] = {}  # this batch's, not yet written
        self.stale: dict[int, list[str]] = {}  # table keys past the horizon, by partition

    @property
    def enabled(self) -> bool:
        return self.horizon_s > 0

    def forget(self) -> None:
        """A rebalance (or a batch abandoned): restore from the table on next use."""
        self.seen.clear()
        self.records.clear()
        self.added.clear()
        self.stale.clear()

    def partition(self, partition: int) -> SeenPosts:
        seen = self.seen.get(partition)
        if seen is None:
            seen = self.seen[partition] = SeenPosts(self.horizon_s, self.max_keys)
            prefix = f"{partition}:"
            restored: dict[int, list[str]] = {}
            for key, value in list(self.table.data.items()):
                if not key.startswith(prefix) or value is None:
                    continue
                bucket = int(key.split(":")[1])
                seen.insert(bucket, decode_hashes(base64.b64decode(value)))
                restored.setdefault(bucket, []).append(key)
            seen.expire()
            for bucket, keys in restored.items():
                if bucket in seen.buckets:
                    self.records[(partition, bucket)] = keys
                else:  # past the horizon: deleted at this partition's next write
                    self.stale.setdefault(partition, []).extend(keys)
        return seen

    def first_time(self, partition: int, key: str, at_s: float) -> bool:
        """False for a key already kept in the bucket of `at_s` (its copies carry the same
        time); remembers it otherwise, to be written with the batch."""
        if not self.enabled:
            return True
        value = key_hash(key)
        first, bucket = self.partition(partition).place(value, at_s)
        if bucket is not None:
            self.added.setdefault((partition, bucket), []).append(value)
        return first

    def seen_within(self, partition: int, key: str, at_s: float) -> bool:
        """Whether `key` was kept within the horizon before `at_s` (its copies come
        later than the original, at times of their own)."""
        if not self.enabled:
            return False
        return self.partition(partition).seen_between(key_hash(key), at_s - self.horizon_s,
                                                      at_s)

    def remember(self, partition: int, key: str, at_s: float) -> None:
        """Keep `key` at `at_s`, to be written with the batch."""
        self.first_time(partition, key, at_s)

    def write(self, last_events: dict[int, Any], set_current: SetCurrent) -> None:
        """The batch's new hashes to the table, on the changelog partition of the batch's
        last event of each partition, then expiry (tombstones for buckets past it)."""
        for (partition, bucket), hashes in self.added.items():
            event = last_events[partition]
            set_current(event)
            key = f"{partition}:{bucket}:{event.message.offset}"
            self.table[key] = base64.b64encode(encode_hashes(hashes)).decode()
            self.records.setdefault((partition, bucket), []).append(key)
        touched = {partition for partition, _ in self.added}
        self.added.clear()
        for partition in touched:
            for bucket in self.seen[partition].expire():
                self.stale.setdefault(partition, []).extend(
                    self.records.pop((partition, bucket), []))
            stale = self.stale.pop(partition, [])
            if stale:
                set_current(last_events[partition])
                for key in stale:  # tombstones: the compacted changelog forgets them
                    self.table.pop(key, None)
