"""Throughput of sentiment scoring on tweet-length French/English posts (2-core machine).

    .venv/bin/python bench/sentiment.py [--posts 1920] [--naive-posts 192] [--rounds 3]

Measures, in one run so that the ratios hold on a shared machine:
- naive: a transformers `pipeline("feature-extraction")` over the converted e5 checkpoint,
  called once per post (the encoder alone, so the baseline is if anything flattered);
- Vigie's fast path for each runtime form (onnx-int8, onnx, torch), on unique texts (the
  cache cannot help), called as the score agent calls it: 512 posts at a time, sorted by
  token count into batches of 16, each padded to its longest text; the ONNX forms run
  `--threads` batches side by side, torch spreads each batch over the threads;
- the default form with realistic reshares: half the posts repeat a recent text.
The naive baseline and the default form alternate for `--rounds` rounds and their medians
are compared, so that a burst of load on a shared machine does not decide the ratio.
Prints one JSON line per measurement, then the ratios. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.sentiment import ClassifierOptions, load_classifier  # noqa: E402
from models.sentiment.build.default_model import ensure_default_model  # noqa: E402
from models.sentiment.serving.head import load_head  # noqa: E402
from models.sentiment.training.evaluation import read_texts  # noqa: E402
from pipeline.sentiment_settings import BATCHES_PER_CALL, SentimentSettings  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "sentiment"


def posts(count: int) -> list[str]:
    texts: list[str] = []
    for name in ("xlmt-french-val", "xlmt-english-val", "tweeteval-val-clean"):
        texts += read_texts(DATA / f"{name}_text.txt")
    unique = list(dict.fromkeys(texts))
    random.Random(0).shuffle(unique)
    while len(unique) < count:
        unique += [t + f" #{len(unique)}" for t in unique[: count - len(unique)]]
    return unique[:count]


def measure(name: str, run, items: list[str]) -> dict:
    run(items[:8])  # warm-up: first-call allocations, lazy initialisation
    started = time.perf_counter()
    run(items)
    elapsed = time.perf_counter() - started
    result = {"form": name, "posts": len(items), "seconds": round(elapsed, 2),
              "posts_per_s": round(len(items) / elapsed, 1)}
    print(json.dumps(result), flush=True)
    return result


def median_of(results: list[dict]) -> dict:
    ordered = sorted(results, key=lambda r: r["posts_per_s"])
    return {**ordered[len(ordered) // 2], "rounds": [r["posts_per_s"] for r in results]}


def in_calls(predict, size: int):
    def run(texts: list[str]) -> None:
        for start in range(0, len(texts), size):
            predict(texts[start : start + size])
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1920)
    parser.add_argument("--naive-posts", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    settings = SentimentSettings.from_env()
    call = args.batch_size * BATCHES_PER_CALL  # what the score agent hands the model
    folder = ensure_default_model(settings.model_dir)
    items = posts(args.posts)
    print(json.dumps({"machine_cores": os.cpu_count(), "threads": args.threads,
                      "batch_size": args.batch_size, "posts_per_call": call,
                      "model_dir": str(folder)}))
    results = {}

    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the e5 checkpoint has no pooler; expected
    hf_logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    extractor = pipeline("feature-extraction", model=str(folder / "checkpoint"),
                         framework="pt", device="cpu")

    prefix = load_head(folder / "head.safetensors").spec.prefix  # what the model expects

    def naive(texts: list[str]) -> None:
        for text in texts:
            extractor(prefix + text)

    def fast_path(runtime: str, cache_size: int = 0):
        return load_classifier(ClassifierOptions(
            runtime=runtime, threads=args.threads, batch_size=args.batch_size,
            cache_size=cache_size, cache_dir=settings.model_dir
        ))

    default = fast_path("onnx-int8")
    naive_rounds, default_rounds = [], []
    for _ in range(args.rounds):
        naive_rounds.append(measure("naive: transformers pipeline, one post per call", naive,
                                    items[: args.naive_posts]))
        default_rounds.append(measure(f"fast path {default.name}, unique texts",
                                      in_calls(default.predict, call), items))
    results["naive"] = median_of(naive_rounds)
    results["onnx-int8"] = median_of(default_rounds)
    for runtime in ("onnx", "torch"):
        clf = fast_path(runtime)
        results[runtime] = measure(f"fast path {clf.name}, unique texts",
                                   in_calls(clf.predict, call), items)

    clf = fast_path("onnx-int8", cache_size=10_000)
    rng = random.Random(1)
    stream: list[str] = []
    for text in items:
        stream.append(text)
        stream.append(rng.choice(stream))  # a reshare of something already seen
    results["reshares"] = measure("fast path onnx-int8, 50% reshares, LRU cache",
                                  in_calls(clf.predict, call), stream)
    base = results["naive"]["posts_per_s"]
    print(json.dumps({
        "median_rounds": {k: results[k]["rounds"] for k in ("naive", "onnx-int8")},
        "ratio_vs_naive": {k: round(v["posts_per_s"] / base, 1)
                           for k, v in results.items() if k != "naive"},
        "int8_vs_onnx_fp32": round(results["onnx-int8"]["posts_per_s"]
                                   / results["onnx"]["posts_per_s"], 2),
        "int8_vs_torch": round(results["onnx-int8"]["posts_per_s"]
                               / results["torch"]["posts_per_s"], 2),
    }))


if __name__ == "__main__":
    main()
