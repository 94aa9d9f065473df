"""`vigie sentiment eval`: score a labelled file with a sentiment model, print one JSON."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

from pipeline.sentiment_settings import RUNTIMES, SentimentSettings
from pipeline.settings import SettingError


@click.group(name="sentiment")
def command() -> None:
    """Sentiment model: evaluation."""


@command.command(name="eval")
@click.option("--texts", "texts_path", required=True, type=click.Path(path_type=Path),
              help="One text per line (UTF-8).")
@click.option("--labels", "labels_path", required=True, type=click.Path(path_type=Path),
              help="One label per line: 0 negative, 1 neutral, 2 positive.")
@click.option("--model", default=None,
              help="HF folder or model id (offline); default: VIGIE_MODEL, else vigie-e5-small.")
@click.option("--runtime", type=click.Choice(RUNTIMES), default=None,
              help="Default: VIGIE_MODEL_RUNTIME (onnx-int8).")
@click.option("--label-map", "label_map", default=None,
              help="Model labels onto Vigie's, e.g. 'LABEL_0=negative,LABEL_1=neutral,...' "
                   "(default: VIGIE_MODEL_LABELS).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads (default: VIGIE_MODEL_THREADS, 2).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Texts per model batch (default: VIGIE_MODEL_BATCH_SIZE, 16).")
def evaluate(texts_path: Path, labels_path: Path, model: str | None, runtime: str | None,
             label_map: str | None, threads: int | None, batch_size: int | None) -> None:
    """Print n, accuracy, macro_recall, macro_f1, recall per class, posts_per_s, model."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from models.sentiment import LABELS, ModelLoadError
    from models.sentiment.training.evaluation import DataFileError, read_labelled, score

    try:
        base = SentimentSettings.from_env()
        settings = SentimentSettings(
            model=base.model if model is None else model,
            runtime=runtime or base.runtime,
            threads=threads or base.threads,
            batch_size=batch_size or base.batch_size,
            cache_size=0,  # measure the model, not the cache
            labels=base.labels if label_map is None else label_map,
            model_dir=base.model_dir,
        )
        texts, gold = read_labelled(texts_path, labels_path)
        classifier = settings.load_classifier()
    except (SettingError, DataFileError, ModelLoadError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    started = time.perf_counter()
    results = classifier.predict(texts)
    elapsed = time.perf_counter() - started
    predicted = [LABELS.index(r.label) for r in results]
    report = score(gold, predicted).as_dict()
    report.update(posts_per_s=round(len(texts) / elapsed, 1) if elapsed > 0 else None,
                  model=classifier.name, texts=str(texts_path))
    click.echo(json.dumps(report))
