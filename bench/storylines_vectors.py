"""What sentence vectors would buy storylines: the same generated waves as
bench/storylines.py, grouped by the default model's encoder (multilingual e5-small, mean
of the last layer, "query: " prefix) instead of words, with the same online leader
clustering per minute and merge over the window (cosine threshold chosen by 2-fold
cross-validation over seeds). Needs the built model (.state/models) and torch; texts are
encoded once each (waves repeat their texts), on the CPU. Not part of the test run.

    .venv/bin/python bench/storylines_vectors.py
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, and bench/pipeline.py would shadow the
# project's `pipeline` package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402

from models.detection import storylines as sl  # noqa: E402
from models.sentiment.serving.built_model import model_folder  # noqa: E402
from pipeline.sentiment_settings import SentimentSettings  # noqa: E402

# The word-based bench (waves, truth, scoring), loaded from its file.
_spec = importlib.util.spec_from_file_location("bench_storylines", _HERE / "storylines.py")
assert _spec is not None and _spec.loader is not None
words = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(words)

MIN_NEGATIVE, MIN_SHARE = sl.MIN_NEGATIVE, sl.MIN_SHARE


class Encoder:
    def __init__(self) -> None:
        import torch

        from models.sentiment.serving.torch_model import load_encoder

        torch.set_num_threads(2)
        checkpoint = model_folder(SentimentSettings.from_env().model_dir) / "checkpoint"
        self.torch = torch
        self.model = load_encoder(checkpoint)
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=128)
        self.tokenizer.enable_padding()
        self.cache: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.encoded = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        for start in range(0, len(missing), 32):
            batch = missing[start:start + 32]
            began = time.perf_counter()
            encodings = self.tokenizer.encode_batch(["query: " + t for t in batch])
            ids = self.torch.tensor([e.ids for e in encodings])
            mask = self.torch.tensor([e.attention_mask for e in encodings])
            with self.torch.inference_mode():
                hidden = self.model(input_ids=ids, attention_mask=mask,
                                    token_type_ids=self.torch.zeros_like(ids)).last_hidden_state
            pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
            vectors = self.torch.nn.functional.normalize(pooled, dim=-1).numpy()
            self.seconds += time.perf_counter() - began
            self.encoded += len(batch)
            for text, vector in zip(batch, vectors, strict=True):
                self.cache[text] = vector
        return np.stack([self.cache[t] for t in texts])


def cluster(posts: list[dict], truth: dict, encode: Encoder, threshold: float
            ) -> tuple[list[str], list[object], int]:
    """Leader clustering per minute (negative posts start groups), merged over the window
    by centroid cosine; reported as bench/storylines.py reports."""
    vectors = encode([p["text"] for p in posts])
    minutes: dict[str, list[dict]] = {}
    for index, post in enumerate(posts):
        key = f"{post['platform']}:{post['id']}"
        negative = truth[key][1] == "negative"
        groups = minutes.setdefault(post["created_at"][:16], [])
        best, best_score = None, threshold
        for group in groups:
            centroid = group["sum"] / np.linalg.norm(group["sum"])
            score = float(centroid @ vectors[index])
            if score >= best_score:
                best, best_score = group, score
        if best is None and negative:
            best = {"sum": np.zeros_like(vectors[index]), "members": [], "negative": 0}
            groups.append(best)
        if best is not None:
            best["sum"] = best["sum"] + vectors[index]
            best["members"].append(index)
            best["negative"] += int(negative)
    merged: list[dict] = []
    pieces = sorted((g for groups in minutes.values() for g in groups),
                    key=lambda g: -len(g["members"]))
    for piece in pieces:
        direction = piece["sum"] / np.linalg.norm(piece["sum"])
        target, best_score = None, threshold
        for candidate in merged:
            score = float(direction @ (candidate["sum"] / np.linalg.norm(candidate["sum"])))
            if score >= best_score:
                target, best_score = candidate, score
        if target is None:
            merged.append({**piece, "members": list(piece["members"])})
        else:
            target["sum"] = target["sum"] + piece["sum"]
            target["members"] += piece["members"]
            target["negative"] += piece["negative"]
    total_negative = sum(truth[f"{p['platform']}:{p['id']}"][1] == "negative" for p in posts)
    reported = [g for g in merged if g["negative"] >= MIN_NEGATIVE
                and g["negative"] >= MIN_SHARE * total_negative]
    where = {i: id(g) for g in reported for i in g["members"]}
    truths, found = [], []
    for index, post in enumerate(posts):
        key = f"{post['platform']}:{post['id']}"
        if truth[key][1] == "negative":
            truths.append(truth[key][0] or "background")
            found.append(where.get(index, "other"))
    return truths, found, len(reported)


def score(seeds: list[int], kind: str, mix: str | None, encode: Encoder, threshold: float
          ) -> dict[str, float]:
    aris, purities, counts = [], [], []
    for seed in seeds:
        posts, truth = words.wave(seed, kind, mix)
        truths, found, reported = cluster(posts, truth, encode, threshold)
        aris.append(sl.adjusted_rand_index(truths, found))
        purities.append(sl.purity(truths, found))
        counts.append(reported)
    return {"ari": statistics.mean(aris), "purity": statistics.mean(purities),
            "min": min(counts), "max": max(counts)}


def main() -> None:
    encode = Encoder()
    seeds = list(range(1, 11))
    grid = [0.65, 0.7, 0.74, 0.77, 0.8, 0.84, 0.88]
    cases = [("mixed-wave", mix) for mix in words.MIXES] + [("wikirevelation", None)]
    folds = [seeds[i::2] for i in range(2)]
    print("## e5 vectors: cosine threshold by 2-fold cross-validation (all cases)")
    for fold, test in enumerate(folds):
        train = [s for s in seeds if s not in test]
        best = max(grid, key=lambda t: statistics.mean(
            score(train, kind, mix, encode, t)["ari"] for kind, mix in cases))
        for kind, mix in cases:
            r = score(test, kind, mix, encode, best)
            print(f"fold {fold} (threshold {best}): {mix or kind}: held-out ARI "
                  f"{r['ari']:.3f} purity {r['purity']:.3f} storylines {r['min']}-{r['max']}")
    print(f"encoder: {encode.encoded} distinct texts, "
          f"{encode.seconds / max(1, encode.encoded) * 1000:.1f} ms each (torch fp32, "
          "2 threads, batches of 32)")


if __name__ == "__main__":
    main()
