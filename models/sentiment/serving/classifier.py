"""The serving side: batched, length-sorted, cached sentiment prediction over a backend.

A backend turns a list of texts into probabilities over Vigie's three labels. The
classifier in front of it normalises texts, answers repeated ones (reshares) from a
bounded LRU cache, scores each distinct new text once, sorts them by length so that
padding to the longest text of a batch wastes little, runs up to the backend's
`concurrency` batches at once, and returns results in the caller's order.

A backend that can tokenize on its own (`prepare`) hands back token ids first, and the
texts are sorted by token count: sorted by characters, tweet-length posts were padded
with 24 % more tokens than they hold; by tokens, with 5 % in 256 posts and 1 % in 1,920.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models.sentiment.serving.head import LABELS

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Sentiment:
    label: str  # "negative" | "neutral" | "positive"
    scores: dict[str, float]  # probability per label, summing to 1
    # The text's sentence vector (sentence_vectors.py), when the backend gives one.
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_probabilities(cls, probabilities: Sequence[float],
                           vector: np.ndarray | None = None) -> Sentiment:
        scores = {name: float(p) for name, p in zip(LABELS, probabilities, strict=True)}
        return cls(label=max(scores, key=scores.__getitem__), scores=scores, vector=vector)


class SentimentError(RuntimeError):
    """The model could not score a text (carried per text by `predict_each`)."""


class Backend(Protocol):
    name: str
    #: how many `probabilities` calls may run at once (threads); 1 when not thread-safe
    concurrency: int

    def probabilities(self, items: list[Any]) -> np.ndarray:
        """[len(items), 3] probabilities in LABELS order.

        The items are the normalised texts, or what the backend's optional
        `prepare(texts) -> list[Sized]` made of them (token ids), whose lengths then
        decide the batches."""
        ...


def normalise_model_input(text: str) -> str:
    """The cache key and what the model sees: NFC, whitespace runs as one space, trimmed.
    Reshares differing only in spacing or Unicode composition are one text."""
    if not isinstance(text, str):
        raise TypeError(f"expected a str to score, got {type(text).__name__}")
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


class SentimentClassifier:
    """Scores texts with a backend: normalised, cached, sorted by length and batched.

    >>> import numpy as np
    >>> class Exclaims:  # a toy backend: "!" is negative, anything else neutral
    ...     name, concurrency = "exclaims", 1
    ...     def probabilities(self, texts):
    ...         return np.array([[0.8, 0.1, 0.1] if "!" in t else [0.1, 0.8, 0.1]
    ...                          for t in texts])
    >>> classifier = SentimentClassifier(Exclaims(), batch_size=2)
    >>> [s.label for s in classifier.predict(["Scandale !", "Ouvert  demain", "Scandale !"])]
    ['negative', 'neutral', 'negative']
    >>> classifier.texts_scored, classifier.cache_hits  # the repeat was scored once
    (2, 1)
    """

    def __init__(self, backend: Backend, batch_size: int = 16, cache_size: int = 10_000,
                 language_means: Any = None) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if cache_size < 0:
            raise ValueError("cache_size must be 0 (no cache) or more")
        self.backend = backend
        # sentence_vectors.LanguageMeans when the backend gives sentence vectors
        self.language_means = language_means
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Sentiment] = OrderedDict()
        self.texts_scored = 0  # distinct texts sent to the model, for metrics and tests
        self.cache_hits = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.backend.name

    def predict(self, texts: Sequence[str]) -> list[Sentiment]:
        """One Sentiment per text, in the input order. Raises if the model fails."""
        keys = [normalise_model_input(t) for t in texts]
        found: dict[str, Sentiment] = {}
        missing: list[str] = []
        for key in keys:
            if key in found:
                continue
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                found[key] = cached
                self.cache_hits += 1
            else:
                found[key] = None  # type: ignore[assignment]  # placeholder, keeps first order
                missing.append(key)
        for key, result in zip(missing, self._score(missing), strict=True):
            found[key] = result
            self._remember(key, result)
        self.cache_hits += len(keys) - len(found)  # repeats inside this call
        return [found[key] for key in keys]

    def predict_each(self, texts: Sequence[str]) -> list[Sentiment | SentimentError]:
        """Like `predict`, but a text the model cannot score yields a SentimentError in its
        place instead of failing the whole batch (the batch is retried text by text)."""
        try:
            return list(self.predict(texts))
        except Exception:  # noqa: BLE001  # isolate the culprit below
            pass
        results: list[Sentiment | SentimentError] = []
        for text in texts:
            try:
                results.append(self.predict([text])[0])
            except Exception as exc:  # noqa: BLE001
                results.append(SentimentError(f"{type(exc).__name__}: {exc}"))
        return results

    def sentence_vector(self, result: Sentiment, language: str | None) -> np.ndarray | None:
        """`result`'s sentence vector less its language's mean (None without a vector or a
        mean for that language): what a mention carries (docs/records.md, `vector`)."""
        if result.vector is None or self.language_means is None:
            return None
        return self.language_means.centre(result.vector, language)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _remember(self, key: str, result: Sentiment) -> None:
        if self.cache_size == 0:
            return
        self._cache[key] = result
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def close(self) -> None:
        """Stop the worker threads of concurrent batches (idempotent)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped in batches of similar length (each call sorted as a whole)."""
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        return [order[b : b + self.batch_size] for b in range(0, len(order), self.batch_size)]

    def _run_batch(self, items: list[Any]) -> tuple[np.ndarray, np.ndarray | None]:
        both = getattr(self.backend, "probabilities_and_vectors", None)
        probabilities, vectors = (both(items) if both is not None
                                  else (self.backend.probabilities(items), None))
        if probabilities.shape != (len(items), len(LABELS)):
            raise SentimentError(
                f"{self.name} returned shape {probabilities.shape} for {len(items)} texts"
            )
        if vectors is not None and len(vectors) != len(items):
            raise SentimentError(f"{self.name} returned {len(vectors)} sentence vectors "
                                 f"for {len(items)} texts")
        return probabilities, vectors

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.backend.concurrency, thread_name_prefix="vigie-model-batch"
                )
            return self._pool

    def _score(self, texts: list[str]) -> list[Sentiment]:
        prepare = getattr(self.backend, "prepare", None)
        items: list[Any] = prepare(texts) if prepare is not None else texts
        batches = self._batches([len(item) for item in items])
        inputs = [[items[i] for i in batch] for batch in batches]
        if self.backend.concurrency > 1 and len(batches) > 1:
            # Single-threaded batches side by side use the cores better than one batch
            # split across threads: the element-wise steps between matrix products
            # (layer norms, GELU, softmax) run in parallel too (models/sentiment/RESULTS.md).
            outputs = list(self._executor().map(self._run_batch, inputs))
        else:
            outputs = [self._run_batch(batch_texts) for batch_texts in inputs]
        results: list[Sentiment | None] = [None] * len(texts)
        for batch, (probabilities, vectors) in zip(batches, outputs, strict=True):
            for j, (i, row) in enumerate(zip(batch, probabilities, strict=True)):
                results[i] = Sentiment.from_probabilities(
                    # A copy: a view would keep the whole batch's array alive in the cache.
                    row, None if vectors is None else vectors[j].copy())
        self.texts_scored += len(texts)
        return results  # type: ignore[return-value]
