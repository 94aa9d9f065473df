"""The `validate` agent: posts.raw -> posts.valid, anything unusable -> posts.dlq.

A post seen before (same `platform:id`) within VIGIE_DEDUP_HOURS passes once: sources
resend after reconnects and producers retry, and downstream counts must not double.
"""

from __future__ import annotations

from datetime import timedelta

import faust
import orjson

from agents.app import AgentContext
from pipeline import metrics
from pipeline.deadletter import dead_letter
from pipeline.language import detect_language
from pipeline.schema import InvalidRecord, decode_post, post_key

STAGE = "validate"


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
    duplicate_counter = metrics.POSTS_DUPLICATE

    @app.agent(topics.posts_raw, name="validate")
    async def validate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            try:
                post = decode_post(event.value, max_bytes=max_bytes,
                                   detect_language=detect_language)
            except InvalidRecord as invalid:
                metrics.POSTS_INVALID.labels(reason=invalid.reason).inc()
                await topics.posts_dlq.send(
                    key=event.key,
                    value=dead_letter(
                        STAGE, invalid.errors, key=event.key, original=event.value,
                        topic=message.topic, partition=message.partition,
                        offset=message.offset, reason=invalid.reason,
                    ),
                )
                continue
            key = post_key(post)
            window = seen[key]
            if window.current() or window.delta(horizon):
                duplicate_counter.inc()
                continue
            await topics.posts_valid.send(key=key.encode(), value=orjson.dumps(post))
            seen[key] = 1
            valid_counter.inc()
