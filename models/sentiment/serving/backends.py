"""Backends: Vigie's e5 model on ONNX Runtime (fp32 or int8) or torch, and any Hugging Face
text-classification model with a label mapping onto negative/neutral/positive."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.sentiment.serving.head import LABELS, Head, HeadSpec

RUNTIMES = ("onnx-int8", "onnx", "torch")


class ModelLoadError(RuntimeError):
    """A model folder or id cannot be loaded (missing files, unknown labels...)."""


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _ort_session(path: Path, threads: int, sentence_layer: int | None = None):
    """`sentence_layer`: also output that layer's pooled sentence vector
    (sentence_vectors.py), the graph edited in memory."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's fused SkipLayerNormalization ran slower on this CPU than the Add and
    # LayerNormalization it replaces: without the fusion the int8 model scored 15 % more
    # posts per second, with the same labels (models/sentiment/RESULTS.md).
    source: str | bytes = str(path)
    if sentence_layer is not None:
        import onnx

        from models.sentiment.serving.sentence_vectors import with_sentence_output

        source = with_sentence_output(onnx.load(str(path)), sentence_layer).SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"],
                                disabled_optimizers=["SkipLayerNormFusion"])


class _FastTokenizer:
    """tokenizers' Rust tokenizer: token ids per text, then padding per batch."""

    def __init__(self, tokenizer_json: Path, max_length: int, pad_id: int) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self.tokenizer.enable_truncation(max_length=max_length)
        self.pad_id = pad_id

    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.pad(self.encode(texts))

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self.tokenizer.encode_batch(texts)]

    def pad(self, encoded: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """input_ids and attention_mask, right-padded to the longest text of the batch."""
        longest = max(len(ids) for ids in encoded)
        ids = np.full((len(encoded), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encoded), longest), dtype=np.int64)
        for row, tokens in enumerate(encoded):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        return ids, mask


class E5OnnxBackend:
    """`threads` batches run side by side, each on one thread of one shared session (ONNX
    Runtime's `run` is thread-safe): measured faster than one batch on `threads` threads,
    because the small element-wise steps between the matrix products parallelise too."""

    def __init__(self, onnx_path: Path, checkpoint: Path, spec: HeadSpec, threads: int,
                 name: str, sentence_layer: int | None = None) -> None:
        import json

        pad_id = int(json.loads((checkpoint / "config.json").read_text())["pad_token_id"])
        self.tokenize = _FastTokenizer(checkpoint / "tokenizer.json", spec.max_length, pad_id)
        self.session = _ort_session(onnx_path, threads=1, sentence_layer=sentence_layer)
        self.sentence_vectors = sentence_layer is not None
        self.concurrency = threads
        self.prefix = spec.prefix
        self.name = name

    def prepare(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text: the classifier batches texts of equal token counts."""
        return self.tokenize.encode([self.prefix + t for t in texts])

    def probabilities(self, encoded: list[list[int]]) -> np.ndarray:
        ids, mask = self.tokenize.pad(encoded)
        (probs,) = self.session.run(["probabilities"], {"input_ids": ids, "attention_mask": mask})
        return probs.astype(np.float64)

    def probabilities_and_vectors(self, encoded: list[list[int]]
                                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and, when the session was made with a sentence layer, each text's
        sentence vector [n, hidden] (None otherwise), from the same run."""
        if not self.sentence_vectors:
            return self.probabilities(encoded), None
        from models.sentiment.serving.sentence_vectors import SENTENCE_OUTPUT

        ids, mask = self.tokenize.pad(encoded)
        probs, vectors = self.session.run(["probabilities", SENTENCE_OUTPUT],
                                          {"input_ids": ids, "attention_mask": mask})
        return probs.astype(np.float64), vectors.astype(np.float32)


class E5TorchBackend:
    def __init__(self, checkpoint: Path, head: Head, threads: int, name: str) -> None:
        import torch

        from models.sentiment.serving.torch_model import load_torch_model

        torch.set_num_threads(threads)
        self.model = load_torch_model(checkpoint, head)
        self.tokenize = _FastTokenizer(checkpoint / "tokenizer.json", head.spec.max_length,
                                       self.model.encoder.config.pad_token_id)
        self.prefix = head.spec.prefix
        self.name = name
        self.concurrency = 1  # torch spreads one batch over its own threads

    def prepare(self, texts: list[str]) -> list[list[int]]:
        return self.tokenize.encode([self.prefix + t for t in texts])

    def probabilities(self, encoded: list[list[int]]) -> np.ndarray:
        import torch

        ids, mask = self.tokenize.pad(encoded)
        with torch.inference_mode():
            probs = self.model(torch.from_numpy(ids), torch.from_numpy(mask))
        return probs.numpy().astype(np.float64)


# ---------------------------------------------------------------- Hugging Face models


def parse_label_map(text: str | None) -> dict[str, str] | None:
    """"LABEL_0=negative,LABEL_1=neutral,LABEL_2=positive" -> dict; None or "" -> None."""
    if not text or not text.strip():
        return None
    mapping: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, target = item.partition("=")
        target = target.strip().lower()
        if not sep or not name.strip():
            raise ValueError(f"label mapping item {item!r}: expected MODEL_LABEL=vigie_label")
        if target not in LABELS:
            raise ValueError(f"label mapping item {item!r}: target must be one of {LABELS}")
        mapping[name.strip()] = target
    return mapping


def resolve_label_map(id2label: dict[int, str], label_map: dict[str, str] | None) -> list[int]:
    """For each model output index, the index of the Vigie label it counts towards.

    An explicit map may name a model label by its name ("LABEL_0", "NEG") or its index
    ("0"). Without one, names that say negative/neutral/positive are recognised; every
    output must be mapped, or loading fails with a message naming the missing ones.
    """
    targets: list[int] = []
    unmapped: list[str] = []
    for index in sorted(id2label):
        name = str(id2label[index])
        target: str | None = None
        if label_map is not None:
            target = label_map.get(name, label_map.get(str(index)))
        else:
            lowered = name.lower()
            for vigie in LABELS:
                if lowered.startswith(vigie[:3]):
                    target = vigie
        if target is None:
            unmapped.append(f"{index}:{name}")
        else:
            targets.append(LABELS.index(target))
    if unmapped:
        raise ModelLoadError(
            "no Vigie label for model output(s) " + ", ".join(unmapped)
            + "; set VIGIE_MODEL_LABELS (or --labels), e.g. "
            "'LABEL_0=negative,LABEL_1=neutral,LABEL_2=positive'"
        )
    return targets


def fold_probabilities(probs: np.ndarray, targets: list[int]) -> np.ndarray:
    """Sum the model's class probabilities into Vigie's three labels."""
    folded = np.zeros((probs.shape[0], len(LABELS)), dtype=np.float64)
    for source, target in enumerate(targets):
        folded[:, target] += probs[:, source]
    return folded


class HuggingFaceBackend:
    """A `text-classification` model from a local folder or an id already in the local
    Hugging Face cache; never downloads. ONNX Runtime is used when the folder has a
    `model.onnx` (taking input_ids/attention_mask, giving logits) and the runtime asks for
    ONNX; otherwise torch."""

    def __init__(self, model: str, runtime: str, threads: int, max_length: int,
                 label_map: dict[str, str] | None) -> None:
        from transformers import AutoConfig, AutoTokenizer

        try:
            config = AutoConfig.from_pretrained(model, local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(model, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(
                f"cannot load {model!r} offline (a local folder, or an id already in the "
                f"Hugging Face cache): {exc}"
            ) from None
        self.targets = resolve_label_map(dict(config.id2label), label_map)
        self.max_length = max_length
        self.concurrency = 1  # one call at a time, spread over `threads`
        onnx_file = Path(model) / "model.onnx"
        int8_file = Path(model) / "model.int8.onnx"  # written by `vigie model import`
        if runtime == "onnx-int8" and int8_file.is_file():
            onnx_file = int8_file
        if runtime.startswith("onnx") and onnx_file.is_file():
            self.session = _ort_session(onnx_file, threads)
            self.model = None
            self.name = f"{model}/{'onnx-int8' if onnx_file == int8_file else 'onnx'}"
        else:
            import torch
            from transformers import AutoModelForSequenceClassification

            torch.set_num_threads(threads)
            self.session = None
            self.model = AutoModelForSequenceClassification.from_pretrained(
                model, local_files_only=True
            ).eval()
            self.name = f"{model}/torch"

    def probabilities(self, texts: list[str]) -> np.ndarray:
        if self.session is not None:
            enc = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="np")
            feeds = {i.name: enc[i.name].astype(np.int64) for i in self.session.get_inputs()}
            logits = self.session.run(None, feeds)[0]
        else:
            import torch

            enc = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
            with torch.inference_mode():
                logits = self.model(**enc).logits.float().numpy()
        return fold_probabilities(_softmax(logits.astype(np.float64)), self.targets)
