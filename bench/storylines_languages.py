"""Storylines across languages: do a French and an English telling of one story, sharing
no word, land in one storyline?

Waves as in bench/storylines.py (`mixed-wave`), plus bilingual mixes of the generator's
BILINGUAL_STORYLINES (each story told in French and English with no word, hashtag, name
or figure in common). Posts are grouped by words per minute and merged over the window as
in service (`StorylineSet`, `merge_storylines`), then storylines of different languages
are joined by their sentence vectors (`join_languages`). Sentence vectors tried:

- `served L8`: the mean over tokens of the served model's last hidden layer (the
  8-layer, sentiment-tuned encoder of vigie-e5-small, no prefix): the features its head
  reads, which the score stage computes for every post anyway;
- `served L4` / `served L6`: the same at earlier layers (less tuned to tone);
- `e5 query`: the untouched 12-layer e5-small, "query: " prefix (a second inference);

each as is, or with each language's mean vector over a reference corpus taken off at
the score stage (`corpus`: the French and English XLM-T validation tweets in
/work/shared/data/sentiment), and with or without `join_languages`' own centring on the
window's storylines. The join threshold is chosen by 2-fold cross-validation over seeds
(fit on one half, scored on the other) over all mixes at once, monolingual ones included,
so that joining never buys bilingual waves at the monolingual ones' expense.

    .venv/bin/python bench/storylines_languages.py [--quick]
    .venv/bin/python bench/storylines_languages.py --cost   # score and detect stages
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

import numpy as np  # noqa: E402

from models.detection import storylines as sl  # noqa: E402
from models.sentiment.serving.built_model import model_folder  # noqa: E402
from pipeline.generator import BILINGUAL_MIX  # noqa: E402
from pipeline.language import detect_language  # noqa: E402
from pipeline.sentiment_settings import SentimentSettings  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_storylines", _HERE / "storylines.py")
assert _spec is not None and _spec.loader is not None
words = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(words)

MIXES = {
    **words.MIXES,
    "bilingual 3": (BILINGUAL_MIX, (0.55, 0.3, 0.15)),
    "bilingual 2": (BILINGUAL_MIX[:2], (0.6, 0.4)),
    "bilingual 1": (BILINGUAL_MIX[:1], (1.0,)),
    # Different stories in different languages: joining them would be the mistake.
    "leak fr, prices en": (("leak-bilingual:fr", "prices-bilingual:en"), (0.6, 0.4)),
    "leak both, prices fr, outage en": (
        ("leak-bilingual", "prices-bilingual:fr", "outage-bilingual:en"), (0.5, 0.3, 0.2)),
}
words.MIXES.update(MIXES)
CORPUS = Path("/work/shared/data/sentiment")
CACHE = Path("/tmp/vigie-storyline-vectors.npz")


class Vectors:
    """Sentence vectors of every source, each text encoded once (cached on disk)."""

    SOURCES = ("served L4", "served L6", "served L8", "e5 query")

    def __init__(self) -> None:
        self.cache: dict[str, dict[str, np.ndarray]] = {s: {} for s in self.SOURCES}
        if CACHE.exists():
            data = np.load(CACHE, allow_pickle=True)
            for source in self.SOURCES:
                if source in data:
                    self.cache[source] = data[source].item()
        self._models = None
        self.seconds = 0.0
        self.encoded = 0

    def _load(self):
        import torch
        from tokenizers import Tokenizer

        from models.sentiment.serving.torch_model import load_encoder

        torch.set_num_threads(2)
        folder = model_folder(SentimentSettings.from_env().model_dir)
        checkpoint = folder / "checkpoint"
        tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=128)
        tokenizer.enable_padding(pad_id=1)
        base = folder.parent / f"{folder.name}-encoder"
        self._models = (torch, tokenizer, load_encoder(checkpoint), load_encoder(base))

    def _encode(self, texts: list[str]) -> None:
        if self._models is None:
            self._load()
        torch, tokenizer, served, base = self._models
        for start in range(0, len(texts), 32):
            batch = texts[start:start + 32]
            began = time.perf_counter()
            for model, prefix, layers in ((served, "", (4, 6, 8)), (base, "query: ", (12,))):
                enc = tokenizer.encode_batch([prefix + t for t in batch])
                ids = torch.tensor([e.ids for e in enc])
                mask = torch.tensor([e.attention_mask for e in enc])
                with torch.inference_mode():
                    out = model(input_ids=ids, attention_mask=mask,
                                token_type_ids=torch.zeros_like(ids), output_hidden_states=True)
                m = mask.unsqueeze(-1).float()
                for layer in layers:
                    pooled = (out.hidden_states[layer] * m).sum(1) / m.sum(1)
                    pooled = torch.nn.functional.normalize(pooled, dim=-1).numpy()
                    source = "e5 query" if layer == 12 else f"served L{layer}"
                    for text, vector in zip(batch, pooled, strict=True):
                        self.cache[source][text] = vector
            self.seconds += time.perf_counter() - began
            self.encoded += len(batch)

    def ensure(self, texts: list[str]) -> None:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache["served L8"]))
        if missing:
            self._encode(missing)
            np.savez(CACHE, **{s: np.array(self.cache[s], dtype=object) for s in self.SOURCES})

    def get(self, source: str, text: str) -> np.ndarray:
        return self.cache[source][text]


def corpus_means(vectors: Vectors) -> dict[str, dict[str, np.ndarray]]:
    texts = {lang: (CORPUS / f"xlmt-{name}-val_text.txt").read_text().splitlines()
             for lang, name in (("fr", "french"), ("en", "english"))}
    vectors.ensure([t for ts in texts.values() for t in ts])
    return {source: {lang: np.mean([vectors.get(source, t) for t in ts], axis=0)
                     for lang, ts in texts.items()} for source in Vectors.SOURCES}


def cluster(posts, truth, vectors: Vectors | None, source: str, means, threshold: float,
            centre: bool):
    sets: dict[str, sl.StorylineSet] = {}
    placed_in = []
    for post in posts:
        key = f"{post['platform']}:{post['id']}"
        part = sets.setdefault(post["created_at"][:16], sl.StorylineSet())
        negative = truth[key][1] == "negative"
        # As the validate stage does: the source's language, else a detected one.
        language = post.get("language") or detect_language(post["text"]) or ""
        vector = None
        if vectors is not None and language in ("fr", "en"):
            v = vectors.get(source, post["text"])
            if means is not None:
                v = v - means[language]
            vector = transform(v).tolist()
        ref = {"text": post["text"], "post_key": key, "created_at": post["created_at"],
               "author_handle": post["author"]["handle"],
               "followers": post["author"]["followers"]}
        index = part.add(ref, negative, post["author"]["followers"], words.IGNORE,
                         vector, language)
        placed_in.append((part, index))
    placed: dict[int, sl.Storyline] = {}
    merged = sl.merge_storylines(list(sets.values()), placed=placed)
    if vectors is not None:
        merged = sl.join_languages(merged, threshold, centre=centre, placed=placed)
    total = sum(s.negative for s in merged.storylines) + merged.other_negative
    reported = {id(s) for s in merged.storylines
                if s.negative >= sl.MIN_NEGATIVE and s.negative >= sl.MIN_SHARE * total}
    truths, found = [], []
    for post, (part, index) in zip(posts, placed_in, strict=True):
        key = f"{post['platform']}:{post['id']}"
        if truth[key][1] != "negative":
            continue
        target = placed.get(id(part.storylines[index])) if index is not None else None
        truths.append(truth[key][0] or "background")
        found.append(id(target) if target is not None and id(target) in reported else "other")
    return truths, found, len(reported)


IN_SERVICE = "served L6"
TRANSFORM = {"name": "float", "matrix": None}


def transform(vector: np.ndarray) -> np.ndarray:
    """What the record would carry: a projection (orthonormal, seeded) and int8."""
    if TRANSFORM["matrix"] is not None:
        vector = TRANSFORM["matrix"] @ vector
    if TRANSFORM["name"].startswith("int8"):
        scale = 127 / max(1e-9, float(np.abs(vector).max()))
        vector = np.round(vector * scale).astype(np.int8).astype(np.float64) / scale
    return vector


def margins(seeds, source, means) -> None:
    """Cosines of centred storyline centroids: same story across languages vs different."""
    same, different = [], []
    for seed in seeds:
        for mix in ("bilingual 3", "leak both, prices fr, outage en"):
            posts, truth = wave(seed, mix)
            sets, stories = {}, {}
            for post in posts:
                key = f"{post['platform']}:{post['id']}"
                language = post.get("language") or detect_language(post["text"]) or ""
                if language not in ("fr", "en"):
                    continue
                part = sets.setdefault(post["created_at"][:16], sl.StorylineSet())
                v = vectors_global.get(source, post["text"]) - means[language]
                index = part.add({"text": post["text"]}, truth[key][1] == "negative", 0,
                                 words.IGNORE, v.tolist(), language)
                if index is not None:
                    stories.setdefault(id(part.storylines[index]), []).append(truth[key][0])
            placed = {}
            merged = sl.merge_storylines(list(sets.values()), placed=placed)
            label = {}
            for piece, target in placed.items():
                label.setdefault(id(target), []).extend(stories.get(piece, []))
            big = [s for s in merged.storylines if s.vector_posts >= sl.LANGUAGE_JOIN_POSTS]
            for i, a in enumerate(big):
                for b in big[i + 1:]:
                    if a.main_language() == b.main_language():
                        continue
                    cos = sl.centered_cosine(a, b, {})
                    la = max(set(label[id(a)]), key=label[id(a)].count)
                    lb = max(set(label[id(b)]), key=label[id(b)].count)
                    (same if la == lb else different).append(cos)
    print(f"  same story across languages: cosine min {min(same):.3f} median "
          f"{statistics.median(same):.3f} (n={len(same)}); different stories: max "
          f"{max(different):.3f} median {statistics.median(different):.3f} "
          f"(n={len(different)})")


WAVES: dict[tuple[int, str], tuple] = {}


def wave(seed: int, mix: str):
    if (seed, mix) not in WAVES:
        WAVES[(seed, mix)] = words.wave(seed, "mixed-wave", mix)
    return WAVES[(seed, mix)]


def score(seeds, mix, *args) -> dict[str, float]:
    aris, purities, counts = [], [], []
    for seed in seeds:
        posts, truth = wave(seed, mix)
        truths, found, reported = cluster(posts, truth, *args)
        aris.append(sl.adjusted_rand_index(truths, found))
        purities.append(sl.purity(truths, found))
        counts.append(reported)
    return {"ari": statistics.mean(aris), "purity": statistics.mean(purities),
            "min": min(counts), "max": max(counts)}


def main() -> None:
    if "--cost" in sys.argv:
        cost()
        return
    seeds = list(range(1, 7 if "--quick" in sys.argv else 11))
    vectors = Vectors()
    for seed in seeds:
        for mix in MIXES:
            vectors.ensure([p["text"] for p in wave(seed, mix)[0]])
    means = corpus_means(vectors)
    if vectors.encoded:
        print(f"encoded {vectors.encoded} texts, {vectors.seconds / vectors.encoded * 1000:.0f}"
              " ms each (both encoders, torch fp32, 2 threads)")
    print("## words only (today)")
    for mix in MIXES:
        r = score(seeds, mix, None, "", None, 0.0, False)
        print(f"{mix}: ARI {r['ari']:.3f} purity {r['purity']:.3f} storylines "
              f"{r['min']}-{r['max']}")
    grid = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5]
    folds = [seeds[i::2] for i in range(2)]
    global vectors_global
    vectors_global = vectors
    variants = [(source, corpus, centre, "float", None)
                for source in Vectors.SOURCES for corpus, centre in
                ((False, True), (True, False))]
    rng = np.random.default_rng(7)
    variants.append((IN_SERVICE, True, False, "int8 384-d", None))
    for dims in (128, 64, 32):
        q, _ = np.linalg.qr(rng.standard_normal((384, dims)))
        variants.append((IN_SERVICE, True, False, f"int8 {dims}-d", q.T))
    for source, corpus, centre, kind, matrix in variants:
        TRANSFORM["name"], TRANSFORM["matrix"] = kind, matrix
        name = f"{source} ({kind}), corpus-centred {corpus}, window-centred {centre}"
        rows = []
        for test in folds:
            train = [s for s in seeds if s not in test]
            args = (vectors, source, means[source] if corpus else None)
            best = max(grid, key=lambda t: statistics.mean(
                score(train, mix, *args, t, centre)["ari"] for mix in MIXES))
            rows.append((best, {mix: score(test, mix, *args, best, centre) for mix in MIXES}))
        print(f"## {name}: thresholds {[b for b, _ in rows]}")
        for mix in MIXES:
            print(f"  {mix}: held-out ARI " + " / ".join(
                f"{r[mix]['ari']:.3f}" for _, r in rows) + "  purity " + " / ".join(
                f"{r[mix]['purity']:.3f}" for _, r in rows) + "  storylines " + " / ".join(
                f"{r[mix]['min']}-{r[mix]['max']}" for _, r in rows))
        if corpus and not centre and kind == "float":
            margins(seeds, source, means[source])
        sys.stdout.flush()


def cost() -> None:
    """What the vectors cost: the score stage (the model with and without its sentence
    output, ONNX int8 as served), the mention record's size, and the detect stage
    (BrandMonitor.add_mention + the state serialised, as the agent does per mention)."""
    import orjson

    from models.detection import BrandMonitor, DetectorConfig
    from models.sentiment import ClassifierOptions, load_classifier
    from pipeline.mentions import mention_record

    settings = SentimentSettings.from_env()
    posts, truth = words.wave(1, "mixed-wave", "bilingual 3", peak=200)
    texts = list(dict.fromkeys(p["text"] for p in posts))
    classifiers = {}
    for vectors in (False, True):
        began = time.perf_counter()
        classifiers[vectors] = load_classifier(ClassifierOptions(
            runtime=settings.runtime, threads=settings.threads, batch_size=settings.batch_size,
            cache_size=0, cache_dir=settings.model_dir, sentence_vectors=vectors))
        print(f"load, sentence vectors {vectors}: {time.perf_counter() - began:.1f} s")
    print(f"## score stage: {len(texts)} distinct texts of a bilingual wave, best of 3 "
          "alternating runs")
    best = {False: float("inf"), True: float("inf")}
    for _ in range(3):
        for vectors, classifier in classifiers.items():
            began = time.perf_counter()
            classifier.predict(texts)
            best[vectors] = min(best[vectors], (time.perf_counter() - began) / len(texts))
    for vectors, seconds in best.items():
        print(f"sentence vectors {vectors}: {seconds * 1000:.2f} ms/text")
    classifier = classifiers[True]
    results = dict(zip(texts, classifier.predict(texts), strict=True))
    mentions = {False: [], True: []}
    for post in posts:
        key = f"{post['platform']}:{post['id']}"
        post = {**post, "language": post.get("language") or detect_language(post["text"])
                or "und"}
        result = results[post["text"]]
        label = truth[key][1]
        for vectors in (False, True):
            mentions[vectors].append(mention_record(
                post, "lumio", ["lumio"], label, result.scores, classifier.name,
                classifier.sentence_vector(result, post["language"]) if vectors else None))
    for vectors, records in mentions.items():
        size = statistics.mean(len(orjson.dumps(m)) for m in records)
        print(f"mention record, vector {vectors}: {size:.0f} bytes on average")
    print(f"## detect stage ({len(posts)} mentions of one 14-minute window at 200 posts/min "
          "peak; best of 3)")
    config = DetectorConfig(interval_seconds=60)
    for vectors, records in mentions.items():
        decoded = [orjson.loads(orjson.dumps(m)) for m in records]
        runs, size = [], 0
        for _ in range(3):
            monitor = BrandMonitor("lumio", "Lumio Energie", config)
            began = time.perf_counter()
            for i, m in enumerate(decoded):
                monitor.add_mention(m)
                if i % 60 == 59:
                    monitor.close_interval(words.START + timedelta(minutes=i // 60),
                                           words.START + timedelta(minutes=i // 60 + 1))
                state = orjson.dumps(monitor.to_state())
                size = max(size, len(state))
            runs.append((time.perf_counter() - began) / len(decoded))
        print(f"add_mention + to_state, vectors {vectors}: {min(runs) * 1e6:.0f} us/mention, "
              f"largest state {size / 1024:.0f} KiB")
    window = [sl.StorylineSet() for _ in range(1)]
    for m in mentions[True]:
        window[0].add({"text": m["text"]}, m["sentiment"]["label"] == "negative", 1,
                      words.IGNORE, sl.unpack_int8(m["vector"]) if "vector" in m else None,
                      m["language"])
    merged = sl.merge_storylines(window)
    began = time.perf_counter()
    for _ in range(20):
        sl.join_languages(sl.merge_storylines(window))
    print(f"join_languages on {len(merged.storylines)} storylines: "
          f"{(time.perf_counter() - began) / 20 * 1000:.1f} ms per report (merge included)")


if __name__ == "__main__":
    main()
