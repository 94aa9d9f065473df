"""The `validate` agent: posts.raw -> posts.valid, anything unusable -> posts.dlq.

A post seen before (same `platform:id`) within VIGIE_DEDUP_HOURS passes once: sources
resend after reconnects and producers retry, and downstream counts must not double.
"""

from __future__ import annotations

from datetime import timedelta

import faust
import orjson

from agents.app import AgentContext
from agents.outlet import Outlet
from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key
from pipeline.language import detect_language
from pipeline.records import post_key
from pipeline.schema import InvalidRecord, decode_post
from pipeline.topics import POSTS_DLQ

STAGE = "validate"
BATCH_SIZE = 1000
BATCH_WITHIN_S = 0.05


def register(context: AgentContext) -> None:
    app, topics = context.app, context.topics
    max_bytes = context.worker.max_record_bytes
    horizon = timedelta(hours=context.worker.dedup_hours)
    # Keys seen in the current window of the dedup horizon; windows expire on their own,
    # and a lookup checks the current and the previous window so that no duplicate slips
    # through at a window boundary.
    seen = app.Table(
        "posts-seen", default=int, partitions=context.kafka.partitions,
        help="post keys already passed to posts.valid",
    ).tumbling(horizon, expires=horizon * 2)

    valid_counter = metrics.POSTS_VALID
    # A post may pass validation and still be too large to write (VIGIE_MAX_RECORD_BYTES
    # above what a topic takes): it becomes a dead letter, as does any other bad record.
    valid_out = Outlet(topics.posts_valid, topics.posts_dlq, POSTS_DLQ, STAGE)
    dead_out = Outlet(topics.posts_dlq, topics.posts_dlq, POSTS_DLQ, STAGE)
    duplicate_counter = metrics.POSTS_DUPLICATE

    @app.agent(topics.posts_raw, name="validate")
    async def validate(stream: faust.StreamT) -> None:
        # Batches amortise Faust's per-record overhead (about 3x the throughput); the
        # outputs are buffered (send_soon) and flushed by Faust before it commits offsets.
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN_S):
            for event in events:
                # Table writes go to the changelog partition of "the current event";
                # inside a batch Faust leaves that to the last one, so set it per record.
                stream._set_current_event(event)
                check(event)

    def check(event: faust.EventT) -> None:
        message = event.message
        try:
            post = decode_post(event.value, max_bytes=max_bytes,
                               detect_language=detect_language)
        except InvalidRecord as invalid:
            metrics.POSTS_INVALID.labels(reason=invalid.reason).inc()
            # Bounded whatever the original's size (a prefix, its size and its hash).
            dead_out.send_soon(
                dead_letter_key(event.key),
                dead_letter(
                    STAGE, invalid.errors, key=event.key, original=event.value,
                    topic=message.topic, partition=message.partition,
                    offset=message.offset, reason=invalid.reason, dlq=POSTS_DLQ,
                ),
            )
            return
        key = post_key(post)
        window = seen[key]
        if window.current() or window.delta(horizon):
            duplicate_counter.inc()
            return
        valid_out.send_soon(key.encode(), orjson.dumps(post))
        seen[key] = 1
        valid_counter.inc()
