"""The `score` agent: posts.valid -> brand match + sentiment -> mentions.scored (key = brand).

Posts are taken in batches so that the model sees full batches; inference runs in one
worker thread so that the event loop keeps heart-beating while the model works. posts.valid
holds only posts that mentioned a watched brand when validated (a reload of the watchlist
meanwhile may leave one unmatched: it stops here); one that mentions two brands gives two
mentions.

Duplicates stop here: a post seen before (same `platform:id`, hence the same partition of
posts.valid) within VIGIE_DEDUP_HOURS is dropped before it is scored (sources resend,
producers retry, validate re-reads what it had not committed when it crashed). The record
of what was seen is `pipeline.dedup.SeenPosts`, 8 bytes a post; it survives a restart
through the `posts-seen-hashes` table, whose changelog receives, per batch and partition,
the new hashes (one record per bucket of time) after the batch's mentions, and tombstones
for buckets past the horizon.

The detector's clock comes from here: every `VIGIE_DETECT_TICK_SECONDS` each score worker
puts a tick on `mentions.scored` for every watched brand (keyed by brand, so behind that
brand's mentions in its partition) that reports how far it has read each partition of
`posts.valid` it holds (models/detection/clock.py, `SourceProgress`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from agents.app import AgentContext
from agents.batches import make_current
from agents.outlet import Outlet
from agents.seen_table import SeenTable
from models.detection import SourceProgress
from pipeline import metrics
from pipeline.deadletter import dead_letter, dead_letter_key
from pipeline.detect_settings import DetectionSettings
from pipeline.mentions import mention_record, tick_record
from pipeline.schema import FieldError, parse_timestamp
from pipeline.sentiment_settings import SentimentSettings
from pipeline.topics import MENTIONS_DLQ, POSTS_DLQ
from pipeline.watchlist import Watchlist

log = logging.getLogger(__name__)
STAGE = "score"
# How long a partial batch may wait for more posts before it is scored anyway.
BATCH_WITHIN_S = 0.25


Pending = list[tuple[dict[str, Any], str, list[str]]]  # (post, brand id, matched terms)


class ScoreStage:
    """The score agent's steps for one batch: match the posts to brands, score the
    matching ones in the model's thread, send the mentions, then count the batch as read
    (for the clock ticks, sent by `send_ticks`)."""

    def __init__(self, context: AgentContext, settings: SentimentSettings,
                 tick_seconds: float, dedup: SeenTable) -> None:
        topics = context.topics
        self.context = context
        self.dedup = dedup
        self.holder = context.watchlist  # reloaded by the app when the file changes
        self.classifier = settings.load_classifier()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigie-model")
        self.posts_per_call = settings.posts_per_call
        self.tick_seconds = tick_seconds
        self.mentions_out = Outlet(topics.mentions_scored, topics.mentions_dlq, MENTIONS_DLQ,
                                   STAGE)
        self.posts_dead_out = Outlet(topics.posts_dlq, topics.posts_dlq, POSTS_DLQ, STAGE)
        self.mentions_dead_out = Outlet(topics.mentions_dlq, topics.mentions_dlq, MENTIONS_DLQ,
                                        STAGE)
        self.progress = SourceProgress()
        self.source_topic = topics.posts_valid.get_topic_name()

    async def handle_batch(self, events: list[Any]) -> None:
        # Each post is decoded once here: match, dedup and the clock all use it.
        posts = [read_post(event.value) for event in events]
        times = [created_at for _, created_at in posts]
        pending = await self.match(events, posts, self.holder.watchlist)
        if pending:
            await self.score_and_send(pending)
        if self.dedup.added:
            last_events = {event.message.partition: event for event in events}
            # Table writes go to the changelog partition of "the current event" of this
            # task (agents/batches.py says why not the stream's).
            self.dedup.write(last_events, make_current)
        self.observe(events, times)

    async def match(self, events: list[Any], posts: list[ReadPost],
                    watchlist: Watchlist) -> Pending:
        """The (post, brand) pairs of the batch's new posts in a language the brand reads;
        a post seen before is dropped, one that cannot be read is dead-lettered."""
        pending: Pending = []
        for event, (post, created_at) in zip(events, posts, strict=True):
            try:
                if isinstance(post, Exception):
                    raise post
                matches = watchlist.match(post["text"])
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                message = event.message
                await self.posts_dead_out.send(dead_letter_key(event.key), dead_letter(
                    STAGE, [FieldError("$", f"unusable post: {exc}")], key=event.key,
                    original=event.value, topic=message.topic,
                    partition=message.partition, offset=message.offset,
                    reason="unusable_post", dlq=POSTS_DLQ))
                continue
            at_s = created_at.timestamp() if created_at is not None else time.time()
            if not self.dedup.first_time(event.message.partition,
                                         (event.key or b"").decode(errors="replace"), at_s):
                metrics.POSTS_DUPLICATE.inc()
                continue
            if not matches:  # the watchlist changed since validate matched it
                metrics.POSTS_UNMATCHED.inc()
            for brand_id, matched in matches:
                if watchlist.brands[brand_id].reads(post.get("language", "und")):
                    pending.append((post, brand_id, matched))
        return pending

    async def score_and_send(self, pending: Pending) -> None:
        """Score the texts in the model's thread, then send one mention per pair (a text
        the model failed on is dead-lettered)."""
        texts = [post["text"] for post, _, _ in pending]
        results, seconds, hits = await asyncio.get_running_loop().run_in_executor(
            self.executor, self.score, texts)
        metrics.MODEL_BATCH_SIZE.observe(len(texts))
        metrics.MODEL_BATCH_SECONDS.observe(seconds)
        metrics.MODEL_POSTS_SCORED.inc(len(texts))
        metrics.MODEL_CACHE_HITS.inc(hits)
        for (post, brand_id, matched), result in zip(pending, results, strict=True):
            if isinstance(result, Exception):
                await self.mentions_dead_out.send(brand_id.encode(), dead_letter(
                    STAGE, [FieldError("text", str(result))], key=brand_id.encode(),
                    original=orjson.dumps(post), topic=self.source_topic,
                    partition=-1, offset=-1, reason="model_error",
                    dlq=MENTIONS_DLQ))
                continue
            mention = mention_record(post, brand_id, matched, result.label, result.scores,
                                     self.classifier.name, self.classifier.sentence_vector(
                                         result, post.get("language")))
            metrics.MENTIONS.labels(brand=brand_id, sentiment=result.label).inc()
            await self.mentions_out.send(brand_id.encode(), orjson.dumps(mention))

    def score(self, texts: list[str]) -> tuple[list[Any], float, int]:
        """Runs in the model's thread: the results, the seconds taken and the cache hits."""
        hits_before = self.classifier.cache_hits
        started = time.perf_counter()
        results = self.classifier.predict_each(texts)
        return results, time.perf_counter() - started, self.classifier.cache_hits - hits_before

    def observe(self, events: list[Any], times: list[datetime | None]) -> None:
        """Count the batch as read, once whatever it gave has been sent."""
        now = datetime.now(UTC)
        for event, created_at in zip(events, times, strict=True):
            self.progress.observe(event.message.partition, event.message.offset, created_at,
                                  now)

    async def send_ticks(self) -> None:
        """Tell each brand's detector how far this worker has read (after its mentions)."""
        app, source_topic = self.context.app, self.source_topic
        try:
            held = [tp for tp in app.consumer.assignment() if tp.topic == source_topic]
            highwaters = {tp.partition: app.consumer.highwater(tp) for tp in held}
            partitions = (app.consumer.topic_partitions(source_topic)
                          or self.context.kafka.partitions)
        except Exception as exc:  # the consumer is not started yet, or is rebalancing
            log.debug("no clock tick this time: %s", exc)
            return
        if not highwaters:
            return
        now = datetime.now(UTC)
        value = orjson.dumps(tick_record(self.progress.report(partitions, highwaters, now), now))
        for brand_id in list(self.holder.watchlist.brands):  # a reload may change it meanwhile
            await self.mentions_out.send(brand_id.encode(), value)


ReadPost = tuple[Any, datetime | None]  # (the decoded post, or why it is not; its created_at)


def read_post(value: bytes | None) -> ReadPost:
    try:
        post = orjson.loads(value)  # type: ignore[arg-type]
    except orjson.JSONDecodeError as exc:  # also what orjson raises for a missing value
        return exc, None
    try:
        return post, parse_timestamp(post["created_at"])
    except (KeyError, TypeError, ValueError):
        return post, None


def register(context: AgentContext) -> None:
    """Declare the score agent (batches of posts.valid), its dedup table and its clock-tick
    timer."""
    app = context.app
    dedup = SeenTable.declare(
        app, "posts-seen-hashes",
        "64-bit hashes of the post keys scored, per partition and bucket of time",
        context.kafka.partitions, context.worker.dedup_hours * 3600.0,
        context.worker.dedup_max_keys)
    stage = ScoreStage(context, SentimentSettings.from_env(),
                       DetectionSettings.from_env().tick_seconds, dedup)

    @app.agent(context.topics.posts_valid, name="score")
    async def score_posts(stream: faust.StreamT) -> None:
        async for events in stream.take_events(stage.posts_per_call, within=BATCH_WITHIN_S):
            await stage.handle_batch(events)

    @context.app.timer(interval=stage.tick_seconds)
    async def send_ticks() -> None:
        await stage.send_ticks()
