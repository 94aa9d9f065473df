"""score + detect on the real broker: a generated leak opens one incident at the right time
and resolves it, and restarting the worker in the middle changes nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from kafka import KafkaProducer

from agents.brand_store import monitor_state
from models.detection import SourceProgress
from pipeline.generator import BrandProfile, Generator, Scenario
from pipeline.mentions import mention_record, tick_record
from pipeline.producer import PostProducer
from pipeline.topic_cleanup import app_id_for
from tests.integration.conftest import consume

pytestmark = pytest.mark.integration

WARMUP, CRISIS, AFTER = 300, 25, 40
START = datetime(2026, 3, 9, 15, 0, tzinfo=UTC)
BRANDS = [
    BrandProfile("orange", ("Orange",), ("#OrangeFrance",), ("@orange",), base_per_minute=4.0),
    BrandProfile("lumio", ("Lumio Energie", "Lumio"), ("#LumioLeaks",), ("@lumio_energie",),
                 base_per_minute=1.5),
]


def scenario_posts() -> list[dict]:
    leak = Scenario("wikirevelation", "lumio", WARMUP, CRISIS, 200)
    return list(Generator(BRANDS, START, seed=12, scenarios=[leak]).posts(WARMUP + CRISIS + AFTER))


def produce(kafka_settings, posts) -> None:
    with PostProducer(kafka_settings, topic="posts.valid", source="test") as producer:
        for post in posts:
            producer.send({**post, "language": post.get("language", "fr")})
    assert producer.failed == 0


def incident_events(kafka_settings, timeout_s: float) -> list[dict]:
    """Incident events, a redelivered copy (same incident and sequence) counted once: once
    some incident opened and every one resolved (on a loaded machine the detector may pause
    for longer than the idle wait between two events), or at `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen: dict[tuple[str, int], dict] = {}
        for record in consume(kafka_settings, "incidents", timeout_s=60, idle_s=10):
            event = orjson.loads(record.value)
            seen.setdefault((event["incident_id"], event["sequence"]), event)
        events = sorted(seen.values(), key=lambda e: (e["incident_id"], e["sequence"]))
        last = {e["incident_id"]: e["event"] for e in events}
        if (last and all(kind == "resolved" for kind in last.values())) \
                or time.monotonic() > deadline:
            return events


def peak(events: list[dict]) -> int:
    return max(e["observed"]["negative"] for e in events)


@pytest.fixture
def detect_env(worker_env):
    # One partition: the replay's posts reach the detector in created_at order, so that
    # two runs can be compared event for event. (With several partitions, a fast replay
    # interleaves them and posts up to the allowed lateness count in a later interval.)
    return {**worker_env, "VIGIE_AGENTS": "score,detect",
            "VIGIE_DETECT_TICK_SECONDS": "1", "VIGIE_DETECT_QUIET_MINUTES": "20",
            "VIGIE_TOPIC_PARTITIONS": "1"}


def test_one_incident_opens_at_the_leak_and_resolves(kafka_settings, detect_env,
                                                     start_worker):
    start_worker(detect_env)
    produce(kafka_settings, scenario_posts())
    events = incident_events(kafka_settings, timeout_s=240)

    assert {e["brand"] for e in events} == {"lumio"}
    assert [e["event"] for e in events].count("opened") == 1
    assert events[0]["event"] == "opened" and events[-1]["event"] == "resolved"
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    leak_start = START + timedelta(minutes=WARMUP)
    opened_at = datetime.fromisoformat(events[0]["opened_at"])
    assert leak_start <= opened_at <= leak_start + timedelta(minutes=12)
    resolved_at = datetime.fromisoformat(events[-1]["resolved_at"])
    assert resolved_at > leak_start + timedelta(minutes=CRISIS)
    assert events[0]["top_posts"] and events[0]["surging_terms"]


def test_a_restart_in_the_middle_changes_nothing(kafka_settings, detect_env, start_worker,
                                                 tmp_path):
    posts = scenario_posts()
    # fp32: its labels do not depend on which texts share a batch (dynamic int8's do a
    # little, and the batches differ between the two runs), so the runs can match exactly.
    detect_env = {**detect_env, "VIGIE_MODEL_RUNTIME": "onnx"}
    # The reference: the same stream, one worker, no restart (topics of its own).
    reference_settings = type(kafka_settings)(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix + "ref.")
    reference_env = {**detect_env, "VIGIE_TOPIC_PREFIX": reference_settings.topic_prefix,
                     "VIGIE_APP_ID": app_id_for(reference_settings.topic_prefix),
                     "VIGIE_STATE_DIR": str(tmp_path / "reference")}
    reference = start_worker(reference_env)
    produce(reference_settings, posts)
    expected = incident_events(reference_settings, timeout_s=240)
    reference.stop()
    assert expected, "the reference run found the incident"

    # Restarted in the middle of the crisis: state comes back from the changelog.
    middle = (START + timedelta(minutes=WARMUP + 14)).isoformat()
    worker = start_worker(detect_env)
    produce(kafka_settings, [p for p in posts if p["created_at"] < middle])
    before = [orjson.loads(r.value) for r in
              consume(kafka_settings, "incidents", expected=1, timeout_s=180, idle_s=3)]
    assert worker.stop() == 0
    start_worker(detect_env)
    produce(kafka_settings, [p for p in posts if p["created_at"] >= middle])
    events = incident_events(kafka_settings, timeout_s=240)

    # The same one incident goes on after the restart: not re-opened, nothing lost.
    assert {e["incident_id"] for e in events} == {before[0]["incident_id"]}
    assert [e["event"] for e in events].count("opened") == 1
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "resolved"
    # And it is the reference's incident, with the same peak and end.
    assert {e["incident_id"] for e in expected} == {before[0]["incident_id"]}
    assert peak(events) == peak(expected)
    assert events[-1]["resolved_at"] == expected[-1]["resolved_at"]


def scored_mention(number: int, created_at: datetime, brand: str = "lumio") -> dict:
    return {
        "schema_version": 1, "brand": brand, "post_key": f"twitter:{number}",
        "platform": "twitter", "post_id": str(number), "url": None,
        "created_at": created_at.isoformat(), "language": "fr",
        "author": {"handle": f"user{number}", "display_name": None, "followers": 100,
                   "verified": False},
        "text": "Lumio nous a menti #LumioLeaks", "reach": 100, "reshare_of": None,
        "sentiment": {"label": "negative", "scores": {"negative": 0.9}},
        "model": "test", "matched": ["lumio"],
    }


def with_ticks(mentions: list[dict], every: int = 50) -> list[dict]:
    """Mentions as one score worker holding the single partition of posts.valid sends
    them: a clock tick after every `every` posts read, and one when it has read them all."""
    progress = SourceProgress()
    now = datetime.now(UTC)
    out: list[dict] = []
    for offset, mention in enumerate(mentions):
        out.append(mention)
        progress.observe(0, offset, datetime.fromisoformat(mention["created_at"]), now)
        if (offset + 1) % every == 0 or offset + 1 == len(mentions):
            out.append(tick_record(progress.report(1, {0: len(mentions)}, now), now))
    return out


def observed(worker, name: str, labels: str) -> float | None:
    for line in worker.metrics_text().splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_mentions_scored_again_after_a_score_restart_count_once(kafka_settings, detect_env,
                                                                start_worker):
    """A score worker that stops before committing its offsets scores its last posts again
    on restart: the same mentions reach the detector a second time, at new offsets, in a
    later batch, and here after the detect worker itself restarted (what it counted is
    restored from its changelog)."""
    env = {**detect_env, "VIGIE_AGENTS": "detect", "VIGIE_DETECT_ALLOWED_LATENESS_SECONDS": "0"}
    minute = START + timedelta(minutes=10)
    first = [scored_mention(n, minute + timedelta(seconds=n)) for n in range(5)]
    later = scored_mention(99, minute + timedelta(minutes=1, seconds=5))
    # The score worker's clock tick after them: it has read its one partition of
    # posts.valid past `later` (one more post, about another brand), which closes `minute`.
    progress = SourceProgress()
    now = START + timedelta(days=1)
    read = [datetime.fromisoformat(post["created_at"]) for post in [*first, later]]
    for offset, created_at in enumerate([*read, read[-1] + timedelta(seconds=5)]):
        progress.observe(0, offset, created_at, now)
    tick = tick_record(progress.report(1, {0: 100}, now), now)
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")

    def send(mentions: list[dict]) -> None:
        for mention in mentions:
            producer.send(kafka_settings.topic("mentions.scored"), key=b"lumio",
                          value=orjson.dumps(mention))
        producer.flush()

    worker = start_worker(env)
    send(first)
    time.sleep(3.0)  # counted, in batches of their own
    assert worker.stop() == 0  # a graceful stop commits what was counted
    worker = start_worker(env)
    send([*first, later, tick])  # the five again, as a restarted scorer sends them
    producer.close()

    deadline = time.monotonic() + 60
    counted = None
    while counted is None and time.monotonic() < deadline:
        counted = observed(worker, "vigie_brand_observed", 'brand="lumio",measure="mentions"')
        time.sleep(0.5)
    assert counted == 5.0  # the closed minute holds each post once, not ten mentions
    assert observed(worker, "vigie_mentions_recounted_total", 'brand="lumio"') == 5.0


def test_the_incident_carries_the_wave_s_storylines(kafka_settings, detect_env, start_worker):
    """Mentions of a generated three-storyline wave (sentiment as scripted, no model) go
    through the detect agent: the incident names the three storylines, biggest first."""
    mixed = Scenario("mixed-wave", "lumio", WARMUP, CRISIS, 80)
    generator = Generator(BRANDS[1:], START, seed=4, scenarios=[mixed], record_truth=True)
    posts = list(generator.posts(WARMUP + CRISIS + AFTER))
    worker = start_worker({**detect_env, "VIGIE_AGENTS": "detect"})
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    mentions = []
    for post in posts:
        label = generator.truth[f"{post['platform']}:{post['id']}"][1]
        matched = [w for w in ("lumio", "#lumioleaks", "@lumio_energie")
                   if w in post["text"].lower()]
        mentions.append(mention_record(post, "lumio", matched, label, {label: 1.0}, "script"))
    for value in with_ticks(mentions):  # and the score stage's clock ticks among them
        producer.send(kafka_settings.topic("mentions.scored"), key=b"lumio",
                      value=orjson.dumps(value))
    producer.flush()
    producer.close()
    events = incident_events(kafka_settings, timeout_s=180)
    worker.stop()

    assert [e["event"] for e in events].count("opened") == 1
    assert events[-1]["event"] == "resolved"
    assert all(e["schema_version"] == 3 for e in events)
    biggest = [e for e in events if e["event"] != "resolved"][-1]
    storylines = biggest["storylines"]
    assert len(storylines) == 3, [s["label"] for s in storylines]
    headlines = [s["headline"] for s in storylines]
    assert headlines[0].startswith("EXCLUSIF : le fichier clients de Lumio Energie")
    assert headlines[1].startswith("Lumio Energie augmente ses tarifs")
    assert headlines[2].startswith("Panne géante chez Lumio Energie")
    leak = storylines[0]
    root = next(p for p in posts if generator.truth[f"{p['platform']}:{p['id']}"][0]
                == "data-leak")
    assert leak["first_post"]["author_handle"] == root["author"]["handle"]
    assert leak["first_post"]["created_at"] == root["created_at"]
    assert events[-1]["storylines"] == storylines


def test_a_busy_brand_s_state_is_written_per_batch_not_per_mention(kafka_settings, detect_env,
                                                                   start_worker):
    """400 mentions of one brand in one minute: the detector's state (100 KB and more with
    storylines) reaches its changelog topic a few times, not once per mention (issue 17:
    at 600 mentions/s that was about 100 MB/s of changelog), and every mention counts."""
    env = {**detect_env, "VIGIE_AGENTS": "detect", "VIGIE_DETECT_ALLOWED_LATENESS_SECONDS": "0"}
    worker = start_worker(env)
    count, minute = 400, START + timedelta(minutes=10)
    mentions = [scored_mention(n, minute + timedelta(seconds=n * 50 / count))
                for n in range(count)]
    # The score worker's ticks: one that has read up to `minute` (the minute opens), and
    # one that has read past it (the minute closes); a tick reports the second latest
    # post read, hence two posts each.
    now, ticks = START + timedelta(days=1), []
    for read in ([minute] * 2, [minute + timedelta(seconds=65)] * 2):
        progress = SourceProgress()
        for offset, created_at in enumerate(read):
            progress.observe(0, offset, created_at, now)
        ticks.append(tick_record(progress.report(1, {0: count + 4}, now), now))
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    for record in [ticks[0], *mentions, ticks[1]]:
        producer.send(kafka_settings.topic("mentions.scored"), key=b"lumio",
                      value=orjson.dumps(record))
    producer.flush()
    producer.close()

    deadline = time.monotonic() + 90
    counted = None
    while counted is None and time.monotonic() < deadline:
        counted = observed(worker, "vigie_brand_observed", 'brand="lumio",measure="mentions"')
        time.sleep(0.5)
    assert counted == float(count)  # the closed minute holds every mention once
    changelog = type(kafka_settings)(bootstrap_servers=kafka_settings.bootstrap_servers,
                                     topic_prefix="")
    app_id = env["VIGIE_APP_ID"]
    records = consume(changelog, f"{app_id}-brand-detectors-changelog", expected=1,
                      timeout_s=60, idle_s=5)
    states = [record for record in records if record.key == b'"lumio"']
    assert 1 <= len(states) <= count // 10, f"{len(states)} state records for {count} mentions"
    assert last_state(kafka_settings, env)["trend"][-1]["mentions"] == count


def last_state(kafka_settings, env) -> dict:
    """The brand's detector state (its monitor's) as its changelog topic last holds it."""
    changelog = type(kafka_settings)(bootstrap_servers=kafka_settings.bootstrap_servers,
                                     topic_prefix="")
    records = consume(changelog, f"{env['VIGIE_APP_ID']}-brand-detectors-changelog",
                      expected=1, timeout_s=60, idle_s=3)
    values = {orjson.loads(r.key): None if r.value is None else orjson.loads(r.value)
              for r in records}  # the last value of each key, as compaction keeps it
    state, _, _ = monitor_state({k: v for k, v in values.items() if v is not None}, "lumio")
    return state


def test_a_worker_killed_mid_stream_loses_no_mention_and_counts_none_twice(
        kafka_settings, detect_env, start_worker, tmp_path):
    """A wave's mentions go through the detector in batches; the worker is killed (SIGKILL:
    no flush, no commit) while they arrive and started again. Every closed minute holds
    the same mentions as in a run without the kill, and the incident's events are the
    same ones (a copy sent again carries the same incident and sequence)."""
    mixed = Scenario("mixed-wave", "lumio", WARMUP, CRISIS, 80)
    generator = Generator(BRANDS[1:], START, seed=4, scenarios=[mixed], record_truth=True)
    mentions = []
    for post in generator.posts(WARMUP + CRISIS + AFTER):
        label = generator.truth[f"{post['platform']}:{post['id']}"][1]
        mentions.append(mention_record(post, "lumio", ["lumio"], label, {label: 1.0}, "script"))
    records = with_ticks(mentions)
    env = {**detect_env, "VIGIE_AGENTS": "detect"}

    def send(settings, part: list[dict], pause_s: float = 0.0) -> None:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
        for at in range(0, len(part), 100):
            for value in part[at:at + 100]:
                producer.send(settings.topic("mentions.scored"), key=b"lumio",
                              value=orjson.dumps(value))
            producer.flush()
            time.sleep(pause_s)  # the worker reads while they come, batch after batch
        producer.close()

    # The reference: the same records, one worker, no kill (topics of its own).
    reference_settings = type(kafka_settings)(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        topic_prefix=kafka_settings.topic_prefix + "ref.")
    reference_env = {**env, "VIGIE_TOPIC_PREFIX": reference_settings.topic_prefix,
                     "VIGIE_APP_ID": app_id_for(reference_settings.topic_prefix),
                     "VIGIE_STATE_DIR": str(tmp_path / "reference")}
    reference = start_worker(reference_env)
    send(reference_settings, records)
    expected = incident_events(reference_settings, timeout_s=180)
    expected_trend = last_state(reference_settings, reference_env)["trend"]
    reference.stop()
    assert [e["event"] for e in expected].count("opened") == 1

    # Killed in the middle of the wave, while records keep coming, then started again.
    middle = next(i for i, r in enumerate(records)
                  if r.get("created_at", "") >= (START + timedelta(minutes=WARMUP + 10))
                  .isoformat())
    worker = start_worker(env)
    send(kafka_settings, records[:middle], pause_s=0.05)
    worker.kill()
    start_worker(env)
    send(kafka_settings, records[middle:])
    events = incident_events(kafka_settings, timeout_s=180)

    def essentials(event: dict) -> tuple:
        return (event["incident_id"], event["sequence"], event["event"], event["observed"],
                event["peak_negative"])

    assert [essentials(e) for e in events] == [essentials(e) for e in expected]
    assert last_state(kafka_settings, env)["trend"] == expected_trend
