"""Sentence vectors from the sentiment model's encoder, for joining storylines across
languages (models/detection/storylines.py, `join_languages`).

The score stage runs the encoder on every post anyway; its hidden states also say what a
post is about. Measured on generated bilingual waves (models/detection/RESULTS.md,
bench/storylines_languages.py), the mean over tokens after encoder layer `SENTENCE_LAYER`
(6 of the served model's 8: the last one is tuned to tone and groups by it) does best,
once each language's mean vector is taken off: a French and an English post are far
apart mostly along one "language" direction, the same for every text, which the mean
over a reference corpus of each language estimates (`LanguageMeans`). Texts of a language
without a mean get no vector (their storylines join by words only).

The ONNX graphs of a build output only probabilities; `with_sentence_output` adds the
pooled layer as a second output when the session is made (a few graph nodes, no second
inference).
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "SENTENCE_LAYER",
    "SENTENCE_OUTPUT",
    "DEFAULT_MEANS_PATH",
    "LanguageMeans",
    "with_sentence_output",
    "pooled",
    "pack_int8",
]

SENTENCE_LAYER = 6  # hidden-state index: 0 = embeddings, 6 = after the sixth layer
SENTENCE_OUTPUT = "sentence_vector"
DEFAULT_MEANS_PATH = (Path(__file__).resolve().parents[1] / "head"
                      / "vigie-e5-small-language-means.json")
# The hidden state after encoder layer L in the exported graph (names from the exporter:
# transformers' BertModel inside E5SentimentModel).
_LAYER_OUTPUT = "/encoder/encoder/layer.{index}/output/LayerNorm/LayerNormalization_output_0"


def pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens, L2-normalised: [batch, tokens, d], [batch, tokens] -> [batch, d]
    (what the graph output computes; used to build the language means and by tests)."""
    weights = mask[..., None].astype(np.float32)
    mean = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1.0)
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


def with_sentence_output(model, layer: int = SENTENCE_LAYER):  # onnx.ModelProto -> same
    """Add output `SENTENCE_OUTPUT` [batch, hidden]: the L2-normalised mean over real tokens
    of the hidden state after `layer`. Raises ValueError when the graph lacks that state."""
    from onnx import TensorProto, helper

    graph = model.graph
    if any(output.name == SENTENCE_OUTPUT for output in graph.output):
        return model
    hidden = _LAYER_OUTPUT.format(index=layer - 1)
    if not any(hidden in node.output for node in graph.node):
        raise ValueError(f"the graph has no hidden state after layer {layer} ({hidden})")
    name = "/sentence/"
    graph.initializer.extend([
        helper.make_tensor(name + "axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor(name + "axis2", TensorProto.INT64, [1], [2]),
        helper.make_tensor(name + "one", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor(name + "tiny", TensorProto.FLOAT, [], [1e-12]),
    ])
    nodes = [
        helper.make_node("Cast", ["attention_mask"], [name + "maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", [name + "maskf", name + "axis2"], [name + "mask3"]),
        helper.make_node("Mul", [hidden, name + "mask3"], [name + "masked"]),
        helper.make_node("ReduceSum", [name + "masked", name + "axis1"], [name + "sum"],
                         keepdims=0),
        helper.make_node("ReduceSum", [name + "mask3", name + "axis1"], [name + "count"],
                         keepdims=0),
        helper.make_node("Max", [name + "count", name + "one"], [name + "count1"]),
        helper.make_node("Div", [name + "sum", name + "count1"], [name + "mean"]),
        # Opset 17: ReduceSum takes its axes as an input, ReduceL2 still as an attribute.
        helper.make_node("ReduceL2", [name + "mean"], [name + "norm"], axes=[1], keepdims=1),
        helper.make_node("Max", [name + "norm", name + "tiny"], [name + "norm1"]),
        helper.make_node("Div", [name + "mean", name + "norm1"], [SENTENCE_OUTPUT]),
    ]
    graph.node.extend(nodes)
    graph.output.append(helper.make_tensor_value_info(
        SENTENCE_OUTPUT, TensorProto.FLOAT, ["batch", None]))
    return model


@dataclass(frozen=True)
class LanguageMeans:
    """Each language's mean sentence vector over a reference corpus, for one model."""

    layer: int
    head_sha256: str  # the head the means were measured with (the build's head)
    means: dict[str, np.ndarray]

    @classmethod
    def load(cls, path: Path = DEFAULT_MEANS_PATH) -> LanguageMeans:
        raw = json.loads(path.read_text())
        return cls(layer=int(raw["layer"]), head_sha256=str(raw["head_sha256"]),
                   means={lang: np.asarray(v, dtype=np.float32)
                          for lang, v in raw["means"].items()})

    def save(self, path: Path, corpus: str) -> None:
        path.write_text(json.dumps({
            "layer": self.layer, "head_sha256": self.head_sha256, "corpus": corpus,
            "means": {lang: [round(float(x), 6) for x in v] for lang, v in self.means.items()},
        }, indent=1) + "\n")

    def centre(self, vector: np.ndarray, language: str | None) -> np.ndarray | None:
        """The vector less its language's mean; None for a language without one."""
        mean = self.means.get((language or "").lower())
        if mean is None or mean.shape != vector.shape:
            return None
        return vector - mean


def pack_int8(vector: np.ndarray) -> str:
    """A vector as the mention record carries it (docs/records.md, `vector`): base64 of a
    little-endian float16 scale then one int8 per number (value = int8 * scale)."""
    peak = float(np.abs(vector).max()) if vector.size else 0.0
    scale = peak / 127 if peak > 0 else 1.0
    quantised = np.clip(np.round(vector / scale), -127, 127).astype(np.int8)
    return base64.b64encode(struct.pack("<e", scale) + quantised.tobytes()).decode()
