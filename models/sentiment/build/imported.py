"""Import a Hugging Face text-classification model folder for offline use.

A model is fetched on a machine with hub access (`huggingface-cli download ORG/NAME
--local-dir DIR`, or `save_pretrained`), copied over, and imported here: its labels are
checked against Vigie's (negative, neutral, positive; a label map names them when the
model's own names do not say), it is exported to ONNX and to int8, and the three forms
must agree on the check sentences, as for the default model's build. The result is a
folder that `VIGIE_MODEL` points at; the worker then never needs torch.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.sentiment.build.default_model import CHECK_SENTENCES, BuildError, check_agreement
from models.sentiment.serving.backends import (
    ModelLoadError,
    _softmax,
    fold_probabilities,
    resolve_label_map,
)
from models.sentiment.serving.head import LABELS

__all__ = ["ImportRefused", "ImportedModel", "import_model", "IMPORT_MANIFEST"]

IMPORT_MANIFEST = "vigie-import.json"
ONNX_OPSET = 17
MAX_LENGTH = 256
# Weight files are what torch loads; the imported folder keeps them (the torch runtime
# still works) but the ONNX forms are what the worker uses.
_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.h5", "*.msgpack")


class ImportRefused(RuntimeError):
    """The folder cannot be imported; the message says why and what to do."""


@dataclass(frozen=True)
class ImportedModel:
    folder: Path
    onnx: Path
    onnx_int8: Path
    report: dict


def _require_torch(source: Path) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        weights = sorted(p.name for pattern in _WEIGHTS for p in source.glob(pattern))
        raise ImportRefused(
            f"{source} holds PyTorch weights ({', '.join(weights) or 'none found'}): exporting "
            "them to ONNX needs torch, which is not installed here. Install it "
            "(pip install 'vigie[build]'), or import on a machine that has it and copy the "
            "imported folder: the worker itself runs it without torch."
        ) from None


def _check_folder(source: Path, label_map: dict[str, str] | None) -> list[int]:
    config_file = source / "config.json"
    if not config_file.is_file():
        raise ImportRefused(f"{source} has no config.json: not a Hugging Face model folder "
                            "(fetch one with `huggingface-cli download ORG/NAME --local-dir "
                            "DIR` on a machine with access)")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    id2label = {int(k): v for k, v in (config.get("id2label") or {}).items()}
    if not id2label:
        raise ImportRefused(f"{source}/config.json has no id2label: not a classification model")
    try:
        return resolve_label_map(id2label, label_map)
    except ModelLoadError as exc:  # which outputs have no Vigie label
        raise ImportRefused(f"{source}: {exc} (give a label map, e.g. "
                            "'LABEL_0=negative,LABEL_1=neutral,LABEL_2=positive')") from None


def import_model(source: Path, target: Path, label_map: dict[str, str] | None = None,
                 log: Callable[[str], None] = lambda _message: None) -> ImportedModel:
    """Check, export and verify `source` into `target` (replaced if it exists)."""
    source = Path(source)
    if not source.is_dir():
        raise ImportRefused(f"{source} is not a folder")
    targets = _check_folder(source, label_map)
    _require_torch(source)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    started = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(
            source, local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise ImportRefused(f"{source}: transformers cannot load it offline: {exc}") from None
    log(f"loaded {type(model).__name__} with {len(targets)} outputs")

    staging = target.with_name(target.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(source, staging)
    onnx_path = staging / "model.onnx"
    int8_path = staging / "model.int8.onnx"
    sample = tokenizer(list(CHECK_SENTENCES[:2]), padding=True, truncation=True,
                       max_length=MAX_LENGTH, return_tensors="pt")
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids")
             if name in sample]
    dynamic = {0: "batch", 1: "sequence"}

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs, strict=True))).logits

    with torch.no_grad():
        torch.onnx.export(Logits(), tuple(sample[n] for n in names), str(onnx_path),
                          input_names=names, output_names=["logits"],
                          dynamic_axes={**{n: dynamic for n in names}, "logits": {0: "batch"}},
                          opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False)
    log(f"exported {onnx_path.name}")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(onnx_path), str(int8_path), per_channel=True,
                     weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
    log(f"quantised {int8_path.name}")

    probabilities = {"torch": _torch_probabilities(model, tokenizer, targets)}
    for form, path in (("onnx", onnx_path), ("onnx-int8", int8_path)):
        probabilities[form] = _onnx_probabilities(path, tokenizer, targets)
    try:
        report = check_agreement(probabilities)
    except BuildError as exc:
        shutil.rmtree(staging)
        raise ImportRefused(f"{source}: the ONNX forms do not give torch's labels: {exc}") \
            from None
    _name_outputs_by_vigie_label(staging / "config.json", targets)
    report.update(source=str(source.resolve()), label_map=label_map,
                  outputs=[int(t) for t in targets],
                  seconds=round(time.monotonic() - started, 1))
    (staging / IMPORT_MANIFEST).write_text(json.dumps(report, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    return ImportedModel(target, target / "model.onnx", target / "model.int8.onnx", report)


def _name_outputs_by_vigie_label(config_file: Path, targets: list[int]) -> None:
    """Each output's label says which Vigie label it counts towards ("negative (LABEL_0)"),
    so that the worker needs no VIGIE_MODEL_LABELS for the imported folder."""
    config = json.loads(config_file.read_text(encoding="utf-8"))
    original = {int(k): v for k, v in config["id2label"].items()}
    names = {index: f"{LABELS[target]} ({original[index]})"
             for index, target in zip(sorted(original), targets, strict=True)}
    config["id2label"] = {str(index): name for index, name in names.items()}
    config["label2id"] = {name: index for index, name in names.items()}
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def _torch_probabilities(model, tokenizer, targets: list[int]) -> np.ndarray:
    import torch

    encoded = tokenizer(list(CHECK_SENTENCES), padding=True, truncation=True,
                        max_length=MAX_LENGTH, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**encoded).logits.float().numpy()
    return fold_probabilities(_softmax(logits.astype(np.float64)), targets)


def _onnx_probabilities(path: Path, tokenizer, targets: list[int]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    encoded = tokenizer(list(CHECK_SENTENCES), padding=True, truncation=True,
                        max_length=MAX_LENGTH, return_tensors="np")
    feeds = {i.name: encoded[i.name].astype(np.int64) for i in session.get_inputs()}
    logits = session.run(None, feeds)[0]
    return fold_probabilities(_softmax(logits.astype(np.float64)), targets)
