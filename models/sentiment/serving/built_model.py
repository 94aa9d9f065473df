"""Where a built default model lives in the cache folder, and whether it is complete.

This is all the worker needs of the build: `built_model(cache_dir)` says whether
`vigie model build` (models/sentiment/build/default_model.py) finished for the committed
head, and where each file is::

    <cache_dir>/vigie-e5-small/
        checkpoint/      config.json, model.safetensors, tokenizer.json (standard transformers)
        head.safetensors the committed head, copied
        model.onnx       encoder + pooling + head, fp32
        model.int8.onnx  the same, dynamic int8 with per-channel weight scales
        build.json       what was built from what, and the label-agreement check
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from models.sentiment.serving.head import DEFAULT_HEAD_PATH

__all__ = [
    "FORMAT_VERSION",
    "MODEL_NAME",
    "BuiltModel",
    "built_model",
    "built_paths",
    "file_sha256",
    "model_folder",
]

MODEL_NAME = "vigie-e5-small"
FORMAT_VERSION = 2  # 2: int8 FFN outputs split around their outlier channels


@dataclass(frozen=True)
class BuiltModel:
    folder: Path
    checkpoint: Path
    head: Path
    onnx: Path
    onnx_int8: Path
    manifest: dict


def model_folder(cache_dir: Path) -> Path:
    return Path(cache_dir) / MODEL_NAME


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def built_paths(folder: Path) -> BuiltModel:
    manifest_path = folder / "build.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return BuiltModel(folder, folder / "checkpoint", folder / "head.safetensors",
                      folder / "model.onnx", folder / "model.int8.onnx", manifest)


def built_model(cache_dir: Path, head_path: Path = DEFAULT_HEAD_PATH) -> BuiltModel | None:
    """The built model if it is complete and was built from this head, else None."""
    built = built_paths(model_folder(cache_dir))
    complete = all(p.exists() for p in (built.checkpoint / "model.safetensors", built.head,
                                        built.onnx, built.onnx_int8))
    if not complete or built.manifest.get("format_version") != FORMAT_VERSION:
        return None
    if head_path.is_file() and built.manifest.get("head_sha256") != file_sha256(head_path):
        return None  # the committed head changed (retrained): rebuild
    return built
