"""Vigie's classification head: what it reads from the encoder and its weights.

The head takes the attention-masked mean of the encoder's hidden states at a few layers,
concatenates them, standardises each feature, and applies a small MLP (or a linear layer)
to get negative/neutral/positive logits. It is stored as one safetensors file whose
metadata holds the spec as JSON, so the committed file alone says how to use it. A head
fine-tuned with the encoder also carries the encoder's low-rank adapters and says how many
encoder layers it was trained with; the build merges those into the checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")
ADAPTER_PREFIX = "encoder."  # tensor names of the encoder adapters inside a head file
DEFAULT_HEAD_PATH = Path(__file__).resolve().parents[1] / "head" / "vigie-e5-small-head.safetensors"


@dataclass(frozen=True)
class HeadSpec:
    layers: tuple[int, ...]  # hidden-state indices: 0 = embeddings, 12 = last layer
    prefix: str  # text prepended before tokenising ("query: " for frozen e5; "" fine-tuned)
    hidden: tuple[int, ...]  # MLP hidden sizes; () means a linear head
    max_length: int = 128  # tokens kept per text (tweets are far shorter)
    encoder_layers: int = 12  # encoder layers kept; the build cuts the others off
    adapter_scale: float = 0.0  # LoRA alpha / rank of the adapters stored with the head
    # Layers whose FFN output projection is int8-sensitive (None: all of them). The build
    # keeps only their outlier input channels in float (the rest of the projection goes
    # int8), or the whole projection when it finds no outlier. Measured per model: see
    # models/sentiment/RESULTS.md.
    int8_float_ffn_layers: tuple[int, ...] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HeadSpec:
        raw = json.loads(text)
        return cls(
            layers=tuple(int(x) for x in raw["layers"]),
            prefix=str(raw["prefix"]),
            hidden=tuple(int(x) for x in raw["hidden"]),
            max_length=int(raw.get("max_length", 128)),
            encoder_layers=int(raw.get("encoder_layers", 12)),
            adapter_scale=float(raw.get("adapter_scale", 0.0)),
            int8_float_ffn_layers=(None if raw.get("int8_float_ffn_layers") is None
                                   else tuple(int(x) for x in raw["int8_float_ffn_layers"])),
        )


@dataclass(frozen=True)
class Head:
    spec: HeadSpec
    feature_mean: np.ndarray  # [features]
    feature_std: np.ndarray  # [features]
    weights: list[np.ndarray]  # Linear weights [out, in], first to last
    biases: list[np.ndarray]
    # Low-rank encoder updates learnt with the head (`encoder.layer.{i}.{linear}.lora_A|B`);
    # empty for a head trained on the frozen encoder. See models/sentiment/training/finetune.py.
    adapters: dict[str, np.ndarray] = field(default_factory=dict)

    def logits(self, features: np.ndarray) -> np.ndarray:
        """numpy forward from pooled features [n, features] (used by checks and tests)."""
        x = (features - self.feature_mean) / self.feature_std
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = x @ w.T + b
            if i < len(self.weights) - 1:
                x = 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))
        return x


def save_head(head: Head, path: Path) -> Path:
    from safetensors.numpy import save_file

    tensors = {"feature_mean": head.feature_mean, "feature_std": head.feature_std}
    for i, (w, b) in enumerate(zip(head.weights, head.biases, strict=True)):
        tensors[f"linear{i}.weight"] = w
        tensors[f"linear{i}.bias"] = b
    tensors.update(head.adapters)
    # float16 keeps the committed file small; the head is computed in float32.
    tensors = {k: np.ascontiguousarray(v, dtype=np.float16) for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # One metadata key only: safetensors writes several in no fixed order, and the file
    # should be byte-for-byte reproducible (the build keys its cache on its hash).
    save_file(tensors, str(path), metadata={"spec": head.spec.to_json()})
    return path


def load_head(path: Path = DEFAULT_HEAD_PATH) -> Head:
    from safetensors import safe_open

    if not path.is_file():
        raise FileNotFoundError(f"sentiment head not found: {path}")
    with safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata() or {}
        if "spec" not in metadata:
            raise ValueError(f"{path}: not a Vigie head (no spec in the metadata)")
        spec = HeadSpec.from_json(metadata["spec"])
        tensors = {k: f.get_tensor(k).astype(np.float32) for k in f.keys()}  # noqa: SIM118
    count = len(spec.hidden) + 1
    return Head(
        spec=spec,
        feature_mean=tensors["feature_mean"],
        feature_std=tensors["feature_std"],
        weights=[tensors[f"linear{i}.weight"] for i in range(count)],
        biases=[tensors[f"linear{i}.bias"] for i in range(count)],
        adapters={k: v for k, v in tensors.items() if k.startswith(ADAPTER_PREFIX)},
    )
