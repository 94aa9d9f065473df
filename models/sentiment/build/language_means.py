"""Measure each language's mean sentence vector (sentence_vectors.py) over a reference
corpus, with the built default model as it serves (ONNX int8), and write them beside the
committed head (`models/sentiment/head/vigie-e5-small-language-means.json`). Run again
whenever the head changes: the means are tied to the head's sha256.

    .venv/bin/python -m models.sentiment.build.language_means MODEL_DIR fr=FILE en=FILE

Each FILE holds one text a line (Vigie's measure used the XLM-T French and English
validation tweets, /work/shared/data/sentiment/xlmt-{french,english}-val_text.txt).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from models.sentiment.serving.backends import E5OnnxBackend
from models.sentiment.serving.built_model import built_model, file_sha256
from models.sentiment.serving.classifier import normalise_model_input
from models.sentiment.serving.head import load_head
from models.sentiment.serving.sentence_vectors import (
    DEFAULT_MEANS_PATH,
    SENTENCE_LAYER,
    LanguageMeans,
)


def measure(backend: E5OnnxBackend, texts: list[str], batch: int = 32) -> np.ndarray:
    """The mean sentence vector of `texts`."""
    vectors = []
    for start in range(0, len(texts), batch):
        encoded = backend.prepare([normalise_model_input(t) for t in texts[start:start + batch]])
        _, found = backend.probabilities_and_vectors(encoded)
        assert found is not None
        vectors.append(found)
    return np.concatenate(vectors).mean(axis=0)


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        sys.exit(__doc__)
    built = built_model(Path(argv[0]))
    if built is None:
        sys.exit(f"no built model in {argv[0]}")
    head = load_head(built.head)
    backend = E5OnnxBackend(built.onnx_int8, built.checkpoint, head.spec, 1, "means",
                            sentence_layer=SENTENCE_LAYER)
    corpus = dict(arg.split("=", 1) for arg in argv[1:])
    means = {language: measure(backend, [t for t in Path(path).read_text().splitlines()
                                         if t.strip()])
             for language, path in corpus.items()}
    LanguageMeans(SENTENCE_LAYER, file_sha256(built.head), means).save(
        DEFAULT_MEANS_PATH, corpus=", ".join(f"{k}: {Path(v).name}" for k, v in corpus.items()))
    print(f"wrote {DEFAULT_MEANS_PATH}: " + ", ".join(
        f"{k} (|mean| {float(np.linalg.norm(v)):.3f})" for k, v in means.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
