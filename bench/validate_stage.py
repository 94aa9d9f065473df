"""The per-post work of the validate stage and the detector's per-mention storyline work,
this tree against an earlier commit, in one process: µs a post (a vector, a mention) and
the ratio old / new.

    .venv/bin/python bench/validate_stage.py [--baseline 6602f0a] [--posts 20000] [--rounds 9]

The stream is bench/pipeline.py's (`make_pool`, `nth_post`: posts about 500 brands, 10 %
about its 50 watched ones, 45 % of them non-ASCII, French or English, a fifth without a
language), matched against its 50-brand watchlist; the mentions are bench/detect_stage.py's
(4,350 mentions of 4 brands, a three-storyline wave, 384-number vectors). The baseline's
modules (`BASELINE_MODULES`) are read from git at `--baseline` and loaded beside this
tree's (the rest of the code is shared). Each measure alternates old and new over
`--rounds` rounds and reports the median of each; `ValidateStage.check` is the stage's
per-record entry point (decode, validate, match, and for a matched post language
detection and encoding), `decode_post` to `fold` its parts; `unpack_int8` and
`StorylineSet.add` are the detector's per-mention work on vectors and storylines. Before
timing, the outputs are compared: every verdict of the stream, the dead letters of
damaged copies of its records (with their error messages), the vectors bit for bit, and
where each mention goes and the storylines' states; the run stops if any differs. The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import random
import statistics
import struct
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, bench/ comes first on sys.path, and bench/pipeline.py would shadow the
# package of that name: put the project root there instead.
sys.path = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

from agents import validate as new_validate  # noqa: E402
from models import text as text_module  # noqa: E402
from models.detection import storylines as new_storylines  # noqa: E402
from models.detection.monitor import _post_evidence  # noqa: E402
from models.sentiment.serving.sentence_vectors import pack_int8  # noqa: E402
from pipeline import schema as new_schema  # noqa: E402
from pipeline import watchlist as new_watchlist  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
assert _spec is not None and _spec.loader is not None
stream = importlib.util.module_from_spec(_spec)
sys.modules["bench_pipeline"] = stream  # its dataclasses look their module up
_spec.loader.exec_module(stream)
_spec = importlib.util.spec_from_file_location("bench_detect_stage",
                                               ROOT / "bench" / "detect_stage.py")
assert _spec is not None and _spec.loader is not None
detect_bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_detect_stage"] = detect_bench
_spec.loader.exec_module(detect_bench)

# The baseline's modules, and the names they are imported by (loaded in this order, each
# seeing the baseline's earlier ones).
BASELINE_MODULES = [
    ("pipeline.watchlist", "pipeline/watchlist.py"),
    ("pipeline.schema", "pipeline/schema.py"),
    ("agents.validate", "agents/validate.py"),
    ("models.detection.terms", "models/detection/terms.py"),
    ("models.detection.storylines", "models/detection/storylines.py"),
]
CREATED_AT = "2026-03-03T12:00:00.001108+00:00"


def load_baseline(revision: str) -> dict[str, types.ModuleType]:
    """The baseline's modules, executed from git's copy at `revision`."""
    loaded: dict[str, types.ModuleType] = {}
    saved = {name: sys.modules[name] for name, _ in BASELINE_MODULES}
    try:
        for name, path in BASELINE_MODULES:
            source = subprocess.run(["git", "show", f"{revision}:{path}"], cwd=ROOT,
                                    check=True, capture_output=True, text=True).stdout
            module = types.ModuleType(f"baseline_{name.replace('.', '_')}")
            module.__file__ = f"{revision}:{path}"
            sys.modules[module.__name__] = module  # its dataclasses look it up
            sys.modules[name] = module  # what the next baseline module imports
            exec(compile(source, module.__file__, "exec"), module.__dict__)
            loaded[name] = module
    finally:
        sys.modules.update(saved)
    return loaded


class Holder:
    """What `ValidateStage` reads of a `WatchlistWatcher`: its current watchlist."""

    def __init__(self, watchlist: Any) -> None:
        self.watchlist = watchlist


def damaged(records: list[tuple[bytes, bytes]], rng: random.Random) -> list[bytes]:
    """Copies of records each broken in one or two ways a source may break them."""
    breaks: list[Callable[[dict[str, Any]], None]] = [
        lambda p: p.pop(rng.choice(["text", "id", "created_at", "platform", "author"])),
        lambda p: p.update(schema_version=rng.choice([2, "1", True, None])),
        lambda p: p.update(platform=rng.choice(["myspace", 3, " X "])),
        lambda p: p.setdefault("author", {}).update(
            followers=rng.choice([-1, 2**60, 1.5, True, "9"])),
        lambda p: p.setdefault("author", {}).update(handle=rng.choice(["", " ", 7, "@@x"])),
        lambda p: p.update(engagement=rng.choice([[], {"likes": -3}, {"views": 1e3}])),
        lambda p: p.update(created_at=rng.choice(["yesterday", "2026-03-03T12:00:00",
                                                  "2126-01-01T00:00:00Z", 5])),
        lambda p: p.update(language=rng.choice(["French", 1, "fr-"])),
        lambda p: p.update(text=rng.choice(["", " \x00 ", 5, "x" * 6000])),
        lambda p: p.update(reply_to=rng.choice(["nokey", 4])),
        lambda p: p.update(url=rng.choice(["ftp://x", 3])),
    ]
    out = []
    for _key, value in records:
        post = orjson.loads(value)
        for brk in rng.sample(breaks, rng.randint(1, 2)):
            brk(post)
        out.append(orjson.dumps(post))
    out += [b"{not json", b"\xff\xfe", b"[1, 2]", b"null", b"x" * 70_000]
    return out


def storyline_mentions() -> list[tuple[Any, ...]]:
    """bench/detect_stage.py's mentions (4 brands, a three-storyline wave, vectors) as the
    detector hands them to `StorylineSet.add`: (brand, evidence, negative, reach, words
    to ignore, vector, language)."""
    names = {brand.id: [brand.id, brand.names[0].lower()] for brand in detect_bench.BRANDS}
    items = []
    for event in detect_bench.stream(160):
        mention = json.loads(event.value)
        if "brand" not in mention:
            continue  # a clock tick
        label = mention["sentiment"]["label"]
        items.append((mention["brand"], _post_evidence(mention, label, mention["reach"]),
                      label == "negative", mention["reach"],
                      [*names[mention["brand"]], *mention["matched"]],
                      new_storylines.unpack_int8(mention["vector"]), mention["language"]))
    return items


class StorylineAdder:
    """`StorylineSet.add` of a storylines module, one set per brand (kept across calls)."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.sets: dict[str, Any] = {}

    def __call__(self, item: tuple[Any, ...]) -> Any:
        if item[0] not in self.sets:
            self.sets[item[0]] = self.module.StorylineSet()
        return self.sets[item[0]].add(*item[1:])


def verdict_view(verdict: Any) -> tuple[Any, ...]:
    """A verdict to compare: a dead letter without its time of failure."""
    if verdict.kind != "invalid":
        return tuple(verdict)
    letter = orjson.loads(verdict.value)
    letter.pop("failed_at")
    return verdict.kind, verdict.key, letter, verdict.reason


def same_outputs(old: dict[str, types.ModuleType], old_stage: Any, new_stage: Any,
                 records: list[tuple[bytes, bytes]], texts: list[str],
                 vectors: list[str], mentions: list[tuple[Any, ...]]) -> dict[str, int]:
    verdicts = 0
    rng = random.Random(7)
    for key, value in [*records, *((b"k", v) for v in damaged(records[:3000], rng))]:
        a = verdict_view(old_stage.check(key, value, 0, 1))
        b = verdict_view(new_stage.check(key, value, 0, 1))
        if a != b:
            raise SystemExit(f"verdicts differ for {value[:200]!r}:\n{a}\n{b}")
        verdicts += 1
    for text in texts:
        if old["pipeline.watchlist"].fold(text) != new_watchlist.fold(text):
            raise SystemExit(f"fold differs for {text!r}")
    for vector in vectors:
        a, b = old["models.detection.storylines"].unpack_int8(vector), \
            new_storylines.unpack_int8(vector)
        if struct.pack(f"{len(a)}d", *a) != struct.pack(f"{len(b)}d", *b):
            raise SystemExit("unpack_int8 differs")
    old_add = StorylineAdder(old["models.detection.storylines"])
    new_add = StorylineAdder(new_storylines)
    for item in mentions:
        if old_add(item) != new_add(item):
            raise SystemExit(f"StorylineSet.add places {item[1]['text']!r} elsewhere")
    for brand, kept in old_add.sets.items():
        if kept.to_state() != new_add.sets[brand].to_state():
            raise SystemExit(f"storylines of {brand} differ")
    return {"verdicts_compared": verdicts, "texts_compared": len(texts),
            "vectors_compared": len(vectors), "mentions_compared": len(mentions)}


def alternate(old: Callable[[Any], Any], new: Callable[[Any], Any], items: Sequence[Any],
              rounds: int, block: int = 250) -> dict[str, float]:
    """Median µs an item of each, old and new: each round goes through the items in blocks,
    timing each block with both (which goes first alternates), so that the machine's load
    (two cores shared) weighs on both alike."""
    totals: dict[str, list[float]] = {"old": [], "new": []}
    for item in items[:block]:  # warm (the new fold builds its patterns here)
        old(item), new(item)
    flip = False
    for _ in range(rounds):
        spent = {"old": 0.0, "new": 0.0}
        gc.collect()
        for start in range(0, len(items), block):
            part = items[start:start + block]
            flip = not flip
            for name, work in ((("old", old), ("new", new)) if flip
                               else (("new", new), ("old", old))):
                started = time.perf_counter()
                for item in part:
                    work(item)
                spent[name] += time.perf_counter() - started
        for name in totals:
            totals[name].append(spent[name] / len(items) * 1e6)
    before, after = statistics.median(totals["old"]), statistics.median(totals["new"])
    return {"old_us": round(before, 2), "new_us": round(after, 2),
            "ratio": round(before / after, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default="6602f0a",
                        help="the commit to compare with (default: before this work)")
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()

    old = load_baseline(args.baseline)
    watchlist_text = stream.watchlist_yaml()
    old_stage = old["agents.validate"].ValidateStage(
        Holder(old["pipeline.watchlist"].parse_watchlist(watchlist_text)), 65536, "raw")
    new_stage = new_validate.ValidateStage(
        Holder(new_watchlist.parse_watchlist(watchlist_text)), 65536, "raw")
    pool = stream.make_pool()
    records = [stream.nth_post(pool, i, CREATED_AT) for i in range(args.posts)]
    objects = [orjson.loads(value) for _key, value in records]
    texts = [post["text"] for post in objects]
    rng = np.random.default_rng(384)
    vectors = [pack_int8(rng.normal(size=384).astype(np.float32)) for _ in range(2000)]
    mentions = storyline_mentions()
    compared = same_outputs(old, old_stage, new_stage, records, texts, vectors, mentions)

    started = time.perf_counter()
    text_module._bmp_marks.cache_clear()
    text_module._bmp_marks()
    bmp_ms = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    text_module._astral_marks.cache_clear()
    text_module._astral_marks()
    astral_ms = (time.perf_counter() - started) * 1000

    def check(stage: Any) -> Callable[[tuple[bytes, bytes]], Any]:
        return lambda record: stage.check(record[0], record[1], 0, 1)

    now = datetime.now(UTC)
    old_match = old_stage.watchlist.watchlist.match
    new_match = new_stage.watchlist.watchlist.match
    results = {
        "check": alternate(check(old_stage), check(new_stage), records, args.rounds),
        "decode_post": alternate(
            lambda r: old["pipeline.schema"].decode_post(r[1], max_bytes=65536),
            lambda r: new_schema.decode_post(r[1], max_bytes=65536), records, args.rounds),
        "validate_post": alternate(
            lambda o: old["pipeline.schema"].validate_post(o, now=now),
            lambda o: new_schema.validate_post(o, now=now), objects, args.rounds),
        "match": alternate(old_match, new_match, texts, args.rounds),
        "fold": alternate(old["pipeline.watchlist"].fold, new_watchlist.fold, texts,
                          args.rounds),
        "unpack_int8": alternate(old["models.detection.storylines"].unpack_int8,
                                 new_storylines.unpack_int8, vectors, args.rounds),
        "storylines_add": alternate(StorylineAdder(old["models.detection.storylines"]),
                                    StorylineAdder(new_storylines), mentions, args.rounds),
    }
    ascii_share = sum(text.isascii() for text in texts) / len(texts)
    matched = sum(1 for text in texts if new_match(text)) / len(texts)
    print(f"baseline {args.baseline}; {args.posts} posts ({matched:.1%} matched, "
          f"{ascii_share:.0%} ASCII), 2,000 vectors of 384, {len(mentions)} mentions; "
          f"median of {args.rounds} rounds")
    print(f"{'':14} {'old µs':>8} {'new µs':>8} {'old/new':>8}")
    for name, figures in results.items():
        print(f"{name:14} {figures['old_us']:8.2f} {figures['new_us']:8.2f} "
              f"{figures['ratio']:8.2f}")
    print(f"combining-character patterns, built once: {bmp_ms:.0f} ms (BMP), "
          f"{astral_ms:.0f} ms (beyond U+FFFF)")
    print(json.dumps({"baseline": args.baseline, "posts": args.posts, "rounds": args.rounds,
                      "matched_share": round(matched, 4), "ascii_share": round(ascii_share, 4),
                      "bmp_patterns_ms": round(bmp_ms, 1),
                      "astral_patterns_ms": round(astral_ms, 1), **compared, **results}))


if __name__ == "__main__":
    main()
