"""The whole pipeline at once: producer -> validate -> score -> detect -> alert, real broker.

Run with the local broker up: `python bench/pipeline.py` (full, about 20 minutes) or
`python bench/pipeline.py --quick` (a smoke test, about 2 minutes).

The stream: generated posts (pipeline/generator.py) about 500 brands of which 50 are on a
temporary watchlist, so 10 % of posts mention a watched brand. Each post produced gets a
fresh id and `created_at` = the moment it is produced; originals get a unique text (as in
a real stream: only reshares repeat a text), so the sentiment cache helps only as much as
it would live.

For one worker (all four agents, one consumer group, own topic prefix, 4 partitions), then
for two worker processes sharing the partitions:
1. the offered rate steps up (`--rates`, `--step-s` each) until consumer lag stops being
   flat (if the first rate is not, it steps down by 30 % from an empty backlog): lag is
   the group's committed offsets behind the end of posts.raw, posts.valid,
   mentions.scored and incidents, sampled twice a second; a step is flat when the lag's
   slope over its last three quarters is under 3 % of the offered rate and the lag stays
   under 10 s of posts or 5,000 records (Faust commits every 2.8 s, so committed lag is a
   saw-tooth); each step also reports the p50/p99 produce -> scored latency of the posts
   of its last three quarters (and produce -> validated, the time to posts.valid: the
   rest is the score stage's), and `sustained_within_p99_goal_posts_per_s` is the
   highest flat step whose p99 was at most 2 s;
2. the highest flat rate is held for `--hold-s` (default 120 s), after `--warmup-s` at
   that rate (default 0; the 10-minute memory run is `--warmup-s 660 --hold-s 600`: the
   detector's 10-minute evidence windows and the model's cache fill first, so that what
   grows during the hold is growth, not filling): RSS at the start of the hold and at its end, lag
   at its end, produce -> scored latency p50/p99 (the mention's Kafka timestamp on
   mentions.scored minus the post's created_at) for posts produced during the hold;
3. production stops and the bench waits for every expected mention: the expected count is
   the watchlist matched against every post produced, so "mentions_ok" means no loss and
   no duplicate, and one worker and two must give the same count for their input.
`--layouts` chooses the layouts and their order: `one` (the keys at the top level),
`replicas` (two workers running every agent, sharing the partitions: `two_workers`) and
`stages` (two workers splitting the stages instead, STAGE_SPLIT: validate in one process,
score, detect and alert in the other, so that the stage that sees every post and the
model's stage each get a core: `two_workers_by_stage`); default `one,replicas`. A layout
named again is measured again (`repeats`): alternating layouts separates them from the
machine's drift. `sustained_by_layout` sums them up in order.
`--baseline-tree PATH` runs the same one-worker measurement with the worker code of
another checkout (e.g. `git worktree add /tmp/base main`), for ratios on a noisy machine.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on the path, and this file is named like
# the package it measures: put the project root there instead.
sys.path = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from pipeline.generator import BrandProfile, Generator  # noqa: E402
from pipeline.kafka_local import LocalKafka  # noqa: E402
from pipeline.settings import KafkaSettings  # noqa: E402
from pipeline.topic_cleanup import delete_owned_topics_quietly  # noqa: E402
from pipeline.topics import INCIDENTS, MENTIONS_SCORED, POSTS_RAW, POSTS_VALID  # noqa: E402
from pipeline.watchlist import parse_watchlist  # noqa: E402
from pipeline.worker_ready import WorkerNotReady, wait_until_ready  # noqa: E402

WATCHED = 50
UNWATCHED = 450  # 10 % of posts mention a watched brand
POOL_SIZE = 40_000
# Topics the worker's group consumes that every post (or every mention) passes through.
LAG_TOPICS = (POSTS_RAW, POSTS_VALID, MENTIONS_SCORED, INCIDENTS)
# `--layouts`: how many worker processes, and each one's VIGIE_AGENTS (None: all agents,
# the workers sharing the partitions). "stages" puts the stage that sees every post in a
# process of its own and the model's stage and the per-brand ones in another.
STAGE_SPLIT = ("validate", "score,detect,alert")
LAYOUTS: dict[str, tuple[int, tuple[str, ...] | None]] = {
    "one": (1, None), "replicas": (2, None), "stages": (len(STAGE_SPLIT), STAGE_SPLIT)}
# Where each layout's result goes in the output (None: at the top level).
LAYOUT_KEYS = {"one": None, "replicas": "two_workers", "stages": "two_workers_by_stage"}
FLAT_SLOPE_SHARE = 0.03   # lag may grow by at most 3 % of the offered rate
# and stay under this many seconds of posts: Faust commits every 2.8 s, so each of the two
# topics every post passes (posts.raw, posts.valid) shows up to 2.8 s of committed lag.
FLAT_MAX_LAG_S = 10.0
FLAT_MAX_LAG_FLOOR = 5000  # at low rates the saw-tooth and the batching waits dominate
# Issue 17's latency goal: p99 produce -> scored at most this at the sustained rate.
P99_GOAL_S = 2.0


# -- the stream ------------------------------------------------------------------------------

def watched_name(index: int) -> str:
    return f"Veltora{index:02d}"


def make_pool(seed: int = 11, unwatched: int = UNWATCHED) -> list[dict[str, Any]]:
    """POOL_SIZE generated posts over 50 watched brands and `unwatched` others, all with
    the same volume (450 others: 10 % of posts mention a watched brand)."""
    brands = [BrandProfile(f"w{i:02d}", (watched_name(i),), base_per_minute=20.0)
              for i in range(WATCHED)]
    brands += [BrandProfile(f"u{i:03d}", (f"Quorbex{i:03d}",), base_per_minute=20.0)
               for i in range(unwatched)]
    generator = Generator(brands, datetime(2026, 3, 3, 12, tzinfo=UTC), seed=seed)
    pool: list[dict[str, Any]] = []
    for post in generator.posts(10_000):
        pool.append(post)
        if len(pool) == POOL_SIZE:
            break
    return pool


def watchlist_yaml() -> str:
    lines = ["version: 1", "receivers: {}", "brands:"]
    for i in range(WATCHED):
        lines += [f"  - id: w{i:02d}", f"    name: {watched_name(i)}"]
    return "\n".join(lines) + "\n"


def nth_post(pool: list[dict[str, Any]], index: int, created_at: str) -> tuple[bytes, bytes]:
    """The index-th post of the stream: the pool cycled, each post with its own id."""
    post = dict(pool[index % len(pool)])
    post["id"] = f"b{index}"
    post["created_at"] = created_at
    if post.get("reshare_of") is None:
        post["text"] = f"{post['text']} {index}"  # only reshares repeat a text
    return f"{post['platform']}:b{index}".encode(), orjson.dumps(post)


def exit_with_parent() -> None:
    """In a child process: exit as soon as the bench that started it is gone. A bench killed
    without its cleanup once left its producer running for 90 minutes (its broker gone,
    the Kafka client's sender spinning at 0.85 of a core), under every run that followed."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def produce_loop(bootstrap: str, prefix: str, rate: Any, produced: Any, stop: Any,
                 failed: Any, ready: Any, unwatched: int = UNWATCHED) -> None:
    """Child process: sends posts at `rate` posts/s (token bucket) until `stop` is set."""
    from pipeline.producer import PostProducer

    exit_with_parent()

    pool = make_pool(unwatched=unwatched)
    settings = KafkaSettings(bootstrap_servers=bootstrap, topic_prefix=prefix)
    index, allowance, last = 0, 0.0, time.monotonic()
    with PostProducer(settings, source="bench") as producer:
        ready.set()
        while not stop.is_set():
            now = time.monotonic()
            allowance = min(allowance + (now - last) * rate.value, rate.value * 0.1 + 1)
            last = now
            created_at = datetime.now(UTC).isoformat()
            while allowance >= 1:
                key, value = nth_post(pool, index, created_at)
                producer.send_raw(key, value)
                index += 1
                allowance -= 1
            produced.value = index
            time.sleep(0.005)
        producer.flush(60)
        failed.value = producer.failed


# -- workers ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MODEL_METRICS = {"vigie_model_posts_scored_total": "scored",
                 "vigie_model_cache_hits_total": "cache_hits",
                 "vigie_model_batch_duration_seconds_sum": "model_s"}


def model_counters(ports: list[int]) -> dict[str, float]:
    """The score stage's model counters, summed over the workers' /metrics."""
    totals = dict.fromkeys(MODEL_METRICS.values(), 0.0)
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
            for line in page.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name in MODEL_METRICS:
                    totals[MODEL_METRICS[name]] += float(value)
    return totals


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds so far of the process's main thread (the event loop: every stage's
    Python work) and of its other threads (the model's, mostly: ONNX Runtime runs the
    score stage's batches there). Python 3.11 does not name its threads for the OS, so
    the model's cannot be told from the few others by name."""
    roles = {"event_loop": 0.0, "other_threads": 0.0}
    ticks = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        role = "event_loop" if task.name == str(pid) else "other_threads"
        roles[role] += (int(fields[11]) + int(fields[12])) / ticks
    return roles


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores (/proc/stat)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields[:8]) - idle) / ticks, sum(fields[:8]) / ticks


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_workers(count: int, tree: Path, env: dict[str, str], work: Path,
                  profile: Path | None = None, heap: Path | None = None,
                  agents: tuple[str, ...] | None = None) -> list[Worker]:
    """`count` workers of `tree`; `agents`: each worker's VIGIE_AGENTS (default: all)."""
    workers = []
    for n in range(count):
        # The profiler writes its file when the worker exits (SIGTERM: Faust stops cleanly).
        # pyinstrument samples (every 1 ms, wall clock): low overhead, shares as they are;
        # cProfile counts calls but inflates call-heavy code, Faust's above all.
        profiler = []
        if profile and n == 0:
            profiler = (["-m", "cProfile", "-o", str(profile)] if profile.suffix == ".prof"
                        else ["-m", "pyinstrument", "-i", "0.001", "-r", "pstats", "-o",
                              str(profile)])
        if heap and n == 0:
            profiler = [str(ROOT / "bench" / "heap_worker.py"), str(heap)]
        port = free_port()
        log_path = work / f"worker-{n}.log"
        worker_env = {**env, "VIGIE_WEB_PORT": str(port),
                      "VIGIE_STATE_DIR": str(work / f"state-{n}"), "PYTHONPATH": str(tree)}
        if agents:
            worker_env["VIGIE_AGENTS"] = agents[n]
        with open(log_path, "wb") as log_file:
            command = [*profiler] if heap and n == 0 else [
                *profiler, "-m", "pipeline.cli", "worker"]
            process = subprocess.Popen([sys.executable, *command],
                                       env=worker_env, cwd=tree, stdout=log_file,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        workers.append(Worker(process, port, log_path))
    for worker in workers:
        try:
            wait_until_ready(worker.port, worker.process, wait_s=180)
        except WorkerNotReady as exc:
            for other in workers:
                other.stop()
            raise SystemExit(f"{exc}:\n{worker.log_path.read_text()[-3000:]}") from None
    return workers


# -- measuring -------------------------------------------------------------------------------

class LagProbe:
    """The consumer groups' committed offsets behind the ends of LAG_TOPICS: the Faust
    agents' group and the validate loop's (`<app id>-validate`, which reads posts.raw);
    per partition the furthest of the two (a worker of an older tree has only the first)."""

    def __init__(self, settings: KafkaSettings, group: str, partitions: int) -> None:
        self.groups = (group, f"{group}-validate")
        self.admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        self.consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
        self.parts = [TopicPartition(settings.topic(name), p)
                      for name in LAG_TOPICS for p in range(partitions)]

    def lag(self) -> int:
        return sum(self.lag_by_topic().values())

    def lag_by_topic(self) -> dict[str, int]:
        ends = self.consumer.end_offsets(self.parts)
        committed: dict[Any, int] = {}
        for group in self.groups:
            for part, done in self.admin.list_group_offsets(group).get(group, {}).items():
                if done is not None and done.offset >= 0:
                    committed[part] = max(committed.get(part, 0), done.offset)
        lags: dict[str, int] = {}
        for part in self.parts:
            behind = max(0, ends[part] - committed.get(part, 0))
            lags[part.topic] = lags.get(part.topic, 0) + behind
        return lags

    def close(self) -> None:
        self.admin.close()
        self.consumer.close()


def percentiles(latencies: list[tuple[float, float]], since: float, until: float
                ) -> tuple[float | None, float | None]:
    """p50 and p99 of the latencies of the posts created in [since, until)."""
    window = sorted(lat for created, lat in latencies if since <= created < until)
    if not window:
        return None, None
    return (round(window[len(window) // 2], 3),
            round(window[min(len(window) - 1, int(len(window) * 0.99))], 3))


@dataclass
class MentionWatch:
    """Reads mentions.scored from the start: counts, duplicates, produce -> scored latency;
    and posts.valid, for produce -> validated: validate's producer stamps each record as it
    sends it, so the difference is what the score stage (and the wait before it) took."""

    settings: KafkaSettings
    seen: set[tuple[str, str]] = field(default_factory=set)
    total: int = 0
    # (created_at as epoch seconds, latency in seconds)
    latencies: list[tuple[float, float]] = field(default_factory=list)
    validated: list[tuple[float, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        valid, scored = self.settings.topic(POSTS_VALID), self.settings.topic(MENTIONS_SCORED)
        consumer = KafkaConsumer(valid, scored,
                                 bootstrap_servers=self.settings.bootstrap_servers,
                                 auto_offset_reset="earliest", group_id=None)
        try:
            while not self.stop.is_set():
                for part, records in consumer.poll(timeout_ms=200, max_records=5000).items():
                    for record in records:
                        self.read(record, part.topic == valid)
        finally:
            consumer.close()

    def read(self, record: Any, is_valid_post: bool) -> None:
        value = orjson.loads(record.value)
        if "tick" in value:
            return  # detect's clock ticks share mentions.scored
        created = datetime.fromisoformat(value["created_at"]).timestamp()
        latency = (created, record.timestamp / 1000 - created)
        if is_valid_post:
            self.validated.append(latency)
            return
        self.latencies.append(latency)
        self.seen.add((value["post_key"], value["brand"]))
        self.total += 1


def slope(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of lag over time (posts/s)."""
    if len(samples) < 3:
        return 0.0
    ts = [t for t, _ in samples]
    ls = [lag for _, lag in samples]
    mean_t, mean_l = statistics.fmean(ts), statistics.fmean(ls)
    den = sum((t - mean_t) ** 2 for t in ts)
    return sum((t - mean_t) * (lag - mean_l) for t, lag in samples) / den if den else 0.0


def run_step(probe: LagProbe, rate_value: Any, produced: Any, rate: float,
             seconds: float) -> dict[str, Any]:
    rate_value.value = rate
    started, first_count = time.monotonic(), produced.value
    samples: list[tuple[float, int]] = []
    while time.monotonic() - started < seconds:
        time.sleep(0.5)
        samples.append((time.monotonic() - started, probe.lag()))
    by_topic = probe.lag_by_topic()
    steady = [s for s in samples if s[0] >= seconds / 4]
    growth = slope(steady)
    offered = (produced.value - first_count) / (time.monotonic() - started)
    tail = [lag for _, lag in steady[-max(1, len(steady) // 3):]]
    flat = growth <= FLAT_SLOPE_SHARE * rate and \
        max(tail) <= max(FLAT_MAX_LAG_S * rate, FLAT_MAX_LAG_FLOOR)
    return {"rate": rate, "offered_posts_per_s": round(offered), "lag_slope": round(growth),
            "lag_last": samples[-1][1] if samples else None, "flat": flat,
            "lag_by_topic": {name.split(".", 1)[1]: lag for name, lag in by_topic.items()}}


def measure(args: argparse.Namespace, workers_count: int, tree: Path,
            pool: list[dict[str, Any]], expected_per_post: list[int],
            agents: tuple[str, ...] | None = None) -> dict[str, Any]:
    """One layout: `workers_count` workers of `tree`, each running every agent (sharing
    the partitions) or, with `agents`, each running the agents named for it."""
    prefix = f"bp{uuid.uuid4().hex[:8]}."
    settings = KafkaSettings(bootstrap_servers=args.bootstrap, topic_prefix=prefix,
                             partitions=args.partitions)
    work = Path(tempfile.mkdtemp(prefix="vigie-bench-pipeline-"))
    watchlist = work / "watchlist.yaml"
    watchlist.write_text(watchlist_yaml())
    env = {key: value for key, value in os.environ.items() if not key.startswith("VIGIE_")}
    env.update(VIGIE_KAFKA_BOOTSTRAP_SERVERS=args.bootstrap, VIGIE_TOPIC_PREFIX=prefix,
               VIGIE_TOPIC_PARTITIONS=str(args.partitions), VIGIE_APP_ID=prefix.rstrip("."),
               VIGIE_WATCHLIST=str(watchlist), VIGIE_LOG_LEVEL="warning",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    profile = args.profile if workers_count == 1 and tree == ROOT else None
    heap = args.heap if workers_count == 1 and tree == ROOT else None
    for old in ([heap, Path(f"{heap}.start"), Path(f"{heap}.end")] if heap else []):
        old.unlink(missing_ok=True)
    workers = start_workers(workers_count, tree, env, work, profile, heap, agents)
    label = f"{workers_count} worker(s)" + (f" by stage: {' | '.join(agents)}" if agents else "")
    result: dict[str, Any] = {"workers": workers_count, "partitions": args.partitions,
                              "tree": str(tree), "agents": list(agents or ["all"] * workers_count)}
    pids = [w.process.pid for w in workers]
    result["rss_start_mb"] = round(sum(rss_mb(pid) for pid in pids), 1)

    ctx = multiprocessing.get_context("spawn")
    rate_value, produced = ctx.Value("d", 0.0), ctx.Value("q", 0)
    failed, stop, ready = ctx.Value("q", 0), ctx.Event(), ctx.Event()
    producer = ctx.Process(target=produce_loop, daemon=True, args=(
        args.bootstrap, prefix, rate_value, produced, stop, failed, ready, args.unwatched))
    producer.start()
    ready.wait(120)
    watch = MentionWatch(settings)
    reader = threading.Thread(target=watch.run, daemon=True)
    reader.start()
    probe = LagProbe(settings, prefix.rstrip("."), args.partitions)
    try:
        def drain() -> None:
            rate_value.value = 0.0
            deadline = time.monotonic() + args.drain_s
            while probe.lag() > 1000 and time.monotonic() < deadline:
                time.sleep(1.0)

        def step(rate: float) -> bool:
            started = time.time()
            outcome = run_step(probe, rate_value, produced, rate, args.step_s)
            # The step's steady part (its last three quarters, as for the lag's slope):
            # its latency is read at the end, once its mentions have all come out.
            step_windows.append((started + args.step_s / 4, time.time()))
            steps.append(outcome)
            print(f"[{label}] {json.dumps(outcome)}", flush=True)
            return bool(outcome["flat"])

        steps: list[dict[str, Any]] = []
        step_windows: list[tuple[float, float]] = []
        sustained = 0.0
        for rate in args.rates:
            if not step(rate):
                break
            sustained = rate
        # Even the first rate was too much: step down (from an empty backlog each time).
        rate = args.rates[0]
        while not sustained and rate > 150:
            rate = round(rate * 0.7, -1)
            drain()
            if step(rate):
                sustained = rate
        result["steps"] = steps
        # Drain what a failed step left, then hold the highest flat rate.
        drain()
        hold_rate = sustained or rate
        if args.warmup_s:
            result["warmup"] = run_step(probe, rate_value, produced, hold_rate, args.warmup_s)
        hold_started, hold_first = time.time(), produced.value
        if heap:
            Path(f"{heap}.start").touch()
        result["rss_warm_mb"] = round(sum(rss_mb(pid) for pid in pids), 1)
        ports = [w.port for w in workers]
        model_before = model_counters(ports)
        cpu_before = sum(cpu_s(pid) for pid in pids)
        producer_before, machine_before = cpu_s(producer.pid), machine_cpu_s()
        threads_before = [thread_cpu_s(pid) for pid in pids]
        raw_lag_before = probe.lag_by_topic()[settings.topic(POSTS_RAW)]
        hold = run_step(probe, rate_value, produced, hold_rate, args.hold_s)
        hold_ended = time.time()
        if heap:
            Path(f"{heap}.end").touch()
            deadline = time.monotonic() + 600  # a snapshot of a large heap takes a while
            while not heap.exists() and time.monotonic() < deadline:
                time.sleep(1.0)
        result["rss_end_mb"] = round(sum(rss_mb(pid) for pid in pids), 1)
        # Per core, whatever share of the machine the workers got: the figure to size with
        # (docs/deploy.md). Posts validated during the hold: offered, less the growth of
        # posts.raw's lag.
        cpu = sum(cpu_s(pid) for pid in pids) - cpu_before
        validated = produced.value - hold_first - (
            probe.lag_by_topic()[settings.topic(POSTS_RAW)] - raw_lag_before)
        result["worker_cpu_share"] = round(cpu / args.hold_s, 2)
        # Where the machine's cores went during the hold: the workers, the bench's
        # producer, and the rest (the broker, the OS, anything else running).
        busy, _ = (now - before for now, before in zip(machine_cpu_s(), machine_before,
                                                         strict=True))
        result["cores_busy"] = {
            "machine": round(busy / args.hold_s, 2),
            "workers": round(cpu / args.hold_s, 2),
            "producer": round((cpu_s(producer.pid) - producer_before) / args.hold_s, 2),
            # Each worker's cores by thread, in start order: is its event loop or its model
            # the limit (and with `agents`, which stage)?
            "worker_threads": [{
                role: round((seconds - before[role]) / args.hold_s, 2)
                for role, seconds in thread_cpu_s(pid).items()}
                for pid, before in zip(pids, threads_before, strict=True)]}
        result["posts_per_worker_cpu_s"] = round(validated / cpu) if cpu else None
        model = {name: value - model_before[name]
                 for name, value in model_counters(ports).items()}
        distinct = model["scored"] - model["cache_hits"]
        # The score stage's own pace: distinct posts through the model per second of
        # model time (the model is busy only part of the hold at a 10 % matched share).
        result["score_stage"] = {
            "distinct_posts": round(distinct), "cache_hits": round(model["cache_hits"]),
            "model_busy_share": round(model["model_s"] / max(args.hold_s, 1e-9), 3),
            "distinct_per_model_s": round(distinct / model["model_s"])
            if model["model_s"] else None}
        result["lag_end"] = hold["lag_last"]
        result["hold"] = hold
        print(f"[{label}] hold {json.dumps(hold)}", flush=True)
        result["sustained_posts_per_s"] = sustained
        result["hold_flat"] = hold["flat"]
        result["rss_growth_after_warmup_pct"] = round(
            100 * (result["rss_end_mb"] - result["rss_warm_mb"]) / result["rss_warm_mb"], 2)
        # What each post leaves in memory (the dedup's record of the posts scored, for
        # VIGIE_DEDUP_HOURS: 16 bytes a matched post once compacted, pipeline/dedup.py).
        result["rss_growth_bytes_per_post"] = round(
            (result["rss_end_mb"] - result["rss_warm_mb"]) * 2**20
            / max(1, produced.value - hold_first))

        stop.set()
        producer.join(timeout=120)
        total_posts = produced.value
        expected = sum(expected_per_post[i % len(pool)] for i in range(total_posts))
        deadline = time.monotonic() + args.drain_s
        while watch.total < expected and time.monotonic() < deadline:
            time.sleep(1.0)
        time.sleep(3.0)  # a duplicate would arrive now
        # Latency of the hold's posts, skipping its first 10 s (the step up to it), read
        # now that the hold's last posts have come out.
        hold_window = (hold_started + min(10.0, args.hold_s / 4), hold_ended)
        p50, p99 = percentiles(watch.latencies, *hold_window)
        for outcome, (since, until) in zip(steps, step_windows, strict=True):
            outcome["p50_scored_s"], outcome["p99_scored_s"] = percentiles(
                watch.latencies, since, until)
            outcome["p50_validated_s"], outcome["p99_validated_s"] = percentiles(
                watch.validated, since, until)
        # Where the hold's latency came from: up to posts.valid, then the score stage.
        result["p50_validated_s"], result["p99_validated_s"] = percentiles(
            watch.validated, *hold_window)
        # The latency goal read per step: the highest flat step whose p99 met it.
        result["sustained_within_p99_goal_posts_per_s"] = max(
            (o["rate"] for o in steps if o["flat"] and o["p99_scored_s"] is not None
             and o["p99_scored_s"] <= P99_GOAL_S), default=0.0)
        result.update(p50_scored_s=p50, p99_scored_s=p99, posts_produced=total_posts,
                      produce_failed=failed.value, mentions_expected=expected,
                      mentions_distinct=len(watch.seen), mentions_total=watch.total,
                      mentions_ok=len(watch.seen) == expected == watch.total)
    finally:
        stop.set()
        watch.stop.set()
        probe.close()
        for worker in workers:
            worker.stop()
        # On a shared broker (not --own-broker, whose state goes with it) the run's topics
        # would stay, a folder of open files per partition.
        delete_owned_topics_quietly(settings)
    result["worker_logs"] = str(work)
    return result


# Where a post's time goes on the worker's event loop: (label, file fragment, function).
PROFILE_PARTS = (
    ("validate: decode + schema", "pipeline/schema.py", "decode_post"),
    ("validate: language detection", "pipeline/language.py", "detect_language"),
    ("validate: whole check()", "agents/validate.py", "check"),
    ("validate: whole batch", "agents/validate.py", "handle"),
    ("score: dedup", "agents/score.py", "first_time"),
    ("score: brand match", "pipeline/watchlist.py", "match"),
    ("score: whole agent", "agents/score.py", "score_posts"),
    ("detect: whole agent", "agents/detect.py", "detect"),
    ("faust: stream iteration", "faust/streams.py", "__aiter__"),
    ("faust: take_events", "faust/streams.py", "take_events"),
    ("faust: send_soon", "faust/topics.py", "send_soon"),
    ("faust: commit", "faust/transport/consumer.py", "commit"),
    ("aiokafka: fetch", "aiokafka/consumer/fetcher.py", "_fetch_requests_routine"),
    ("aiokafka: producer sender", "aiokafka/producer/sender.py", "_sender_routine"),
    ("event loop: select (idle)", "selectors.py", "select"),
)


def profile_summary(path: Path, posts: int) -> dict[str, Any]:
    """Inclusive seconds and microseconds per post produced for PROFILE_PARTS, and the
    top functions by own time (cProfile sees the main thread only: not the model)."""
    import pstats

    stats = pstats.Stats(str(path))
    entries = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _, ct, _) in entries.values())
    parts: dict[str, Any] = {}
    for label, fragment, function in PROFILE_PARTS:
        inclusive = sum(ct for (file, _, name), (_, _, _, ct, _) in entries.items()
                        if name == function and file.endswith(fragment))
        parts[label] = {"s": round(inclusive, 2),
                        "us_per_post": round(1e6 * inclusive / max(posts, 1), 1)}
    own = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:25]
    top = [{"function": f"{Path(file).name}:{line}:{name}", "own_s": round(tt, 2),
            "calls": nc, "us_per_post": round(1e6 * tt / max(posts, 1), 2)}
           for (file, line, name), (_, nc, tt, _, _) in own]
    for row in top:
        print(f"profile own time: {row}", flush=True)
    return {"main_thread_s": round(total, 1), "posts": posts, "parts": parts, "top_own": top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")],
                        help="offered rates, posts/s, in increasing order (default "
                        "1000,2000,...,8000; --quick: 500,1500,3000)")
    parser.add_argument("--step-s", type=float, help="seconds per rate (default 60)")
    parser.add_argument("--hold-s", type=float, help="seconds at the sustained rate (120)")
    parser.add_argument("--warmup-s", type=float, default=0.0,
                        help="seconds at the sustained rate before the hold (memory runs)")
    parser.add_argument("--drain-s", type=float, default=180.0)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: rates 500,1500,3000 for 15 s each, hold 15 s")
    parser.add_argument("--own-broker", action="store_true",
                        help="start a private broker on free ports (own state, stopped at "
                        "the end) instead of using --bootstrap")
    parser.add_argument("--matched-share", type=float, default=0.1,
                        help="share of posts that mention a watched brand (1.0: every post "
                        "is scored, to load the model)")
    parser.add_argument("--layouts", type=lambda text: text.split(","),
                        default=["one", "replicas"],
                        help=f"worker layouts to measure, in order ({', '.join(LAYOUTS)}; "
                        "default one,replicas; a layout named twice is measured twice)")
    parser.add_argument("--one-worker-only", action="store_true",
                        help="the same as --layouts one")
    parser.add_argument("--profile", type=Path,
                        help="run the one worker under a profiler, write its stats here "
                        "(pstats format; cProfile if the name ends in .prof, else "
                        "pyinstrument) and print where its main thread's time went")
    parser.add_argument("--heap", type=Path,
                        help="run the one worker under tracemalloc and write here what its "
                        "heap grew by during the hold, by allocating line (bench/heap_worker.py)")
    parser.add_argument("--baseline-tree", type=Path,
                        help="also measure one worker running the code of this checkout")
    args = parser.parse_args()
    if args.one_worker_only:
        args.layouts = ["one"]
    unknown = [layout for layout in args.layouts if layout not in LAYOUTS]
    if unknown:
        parser.error(f"--layouts: unknown {', '.join(unknown)} (known: {', '.join(LAYOUTS)})")
    quick = {"rates": [500.0, 1500.0, 3000.0], "step_s": 15.0, "hold_s": 15.0}
    full = {"rates": [1000.0 * n for n in range(1, 9)], "step_s": 60.0, "hold_s": 120.0}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)

    broker = None
    if args.own_broker:
        # A shared broker carries everyone's topics (and may run out of heap); a private
        # one measures this pipeline alone.
        broker = LocalKafka(free_port(), free_port(),
                            Path(tempfile.mkdtemp(prefix="vigie-bench-kafka-")), heap="1g")
        broker.start(wait_s=120)
        args.bootstrap = broker.bootstrap
    try:
        run(args)
    finally:
        if broker is not None:
            broker.stop()


def run(args: argparse.Namespace) -> None:
    args.unwatched = round(WATCHED / args.matched_share) - WATCHED
    pool = make_pool(unwatched=args.unwatched)
    watchlist = parse_watchlist(watchlist_yaml())
    expected_per_post = [len(watchlist.match(post["text"])) for post in pool]
    share = sum(1 for n in expected_per_post if n) / len(pool)
    results: dict[str, Any] = {"cores": os.cpu_count(), "matched_share": round(share, 3),
                               "load_avg_start": os.getloadavg()[0]}
    print(f"stream: {len(pool)} distinct posts cycled, {share:.1%} mention a watched brand",
          flush=True)
    if args.baseline_tree:
        results["baseline"] = measure(args, 1, args.baseline_tree.resolve(), pool,
                                      expected_per_post)
    # Each layout in the order given; a layout named again is measured again (alternating
    # layouts tells a difference between them from the machine's drift) into `repeats`.
    measured: list[dict[str, Any]] = []
    for n, layout in enumerate(args.layouts):
        count, agents = LAYOUTS[layout]
        result = measure(args, count, ROOT, pool, expected_per_post, agents)
        if layout in args.layouts[:n]:
            results.setdefault("repeats", []).append({"layout": layout, **result})
        elif LAYOUT_KEYS[layout]:
            results[LAYOUT_KEYS[layout]] = result
        else:
            results.update(result)
        measured.append(result)
        results.setdefault("sustained_by_layout", []).append({
            "layout": layout, "sustained_posts_per_s": result["sustained_posts_per_s"],
            "p99_scored_s": result["p99_scored_s"],
            "sustained_within_p99_goal_posts_per_s":
                result["sustained_within_p99_goal_posts_per_s"]})
    if args.profile and "posts_produced" in results:
        results["profile"] = profile_summary(args.profile, results["posts_produced"])
    if len(measured) > 1:
        # Every layout gave every expected mention exactly once for its own input.
        results["same_mentions"] = all(result["mentions_ok"] for result in measured)
    if args.baseline_tree and results["baseline"]["sustained_posts_per_s"] and \
            "sustained_posts_per_s" in results:
        results["ratio_vs_baseline"] = round(
            results["sustained_posts_per_s"] / results["baseline"]["sustained_posts_per_s"], 2)
    results["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
