"""`vigie model train`: train Vigie's sentiment head, with a fixed seed.

Two recipes, both chosen on the shared validation files (head/TRAINING.md):

- the default, `finetune_encoder`: the first 8 encoder layers fine-tuned with low-rank
  adapters together with a linear head on the mean of layer 8 (training/finetune.py);
  the adapters are saved in the head file and merged by the build;
- `train_head` on frozen features (`--frozen-head`, and `--baseline` for the logistic head
  to beat): the masked mean of chosen hidden layers of the frozen 12-layer encoder,
  standardised, into a small MLP. Encoder features are cached on disk, keyed by the
  checkpoint, the prefix and the data file, so retraining takes seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from models.sentiment.serving.classifier import normalise_model_input
from models.sentiment.serving.head import DEFAULT_HEAD_PATH, Head, HeadSpec, save_head
from models.sentiment.training.evaluation import read_labelled, score

if TYPE_CHECKING:  # torch is imported only when fine-tuning runs
    from models.sentiment.training.finetune import FinetuneConfig

TRAIN_FILE = "xlmt-multilingual-train"
VALIDATION_FILES = ("tweeteval-val-clean", "xlmt-english-val", "xlmt-french-val",
                    "xlmt-multilingual-val")
NORMALISATION = "nfc-collapse-strip-v1"  # classifier.normalise_model_input; part of the cache key
ALL_LAYERS = 13  # embeddings + 12 layers; the cache keeps all so the recipe can change


@dataclass(frozen=True)
class TrainConfig:
    spec: HeadSpec = HeadSpec(layers=(4, 6, 8, 10, 12), prefix="query: ", hidden=(64,))
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.5
    class_weights: bool = True


# The simple head to beat: logistic regression (a linear layer, softmax, weight decay) on
# the mean-pooled last layer, as in shared/data/README.md.
BASELINE_CONFIG = TrainConfig(
    spec=HeadSpec(layers=(12,), prefix="query: ", hidden=()), epochs=20, dropout=0.0,
    class_weights=False,
)


def _file_digest(path: Path, size: int = 16) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:size]


def encode_all_layers(checkpoint: Path, texts: list[str], prefix: str, max_length: int,
                      batch_size: int = 32, threads: int = 2) -> np.ndarray:
    """[n, 13, hidden] float16: masked mean of every hidden state, texts in input order."""
    import torch

    from models.sentiment.serving.backends import _FastTokenizer
    from models.sentiment.serving.torch_model import load_encoder, masked_mean_layers

    torch.set_num_threads(threads)
    encoder = load_encoder(checkpoint)
    tokenize = _FastTokenizer(checkpoint / "tokenizer.json", max_length,
                              encoder.config.pad_token_id)
    out = np.zeros((len(texts), ALL_LAYERS, encoder.config.hidden_size), dtype=np.float16)
    order = np.argsort([len(t) for t in texts], kind="stable")  # little padding per batch
    layers = tuple(range(ALL_LAYERS))
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = tokenize([prefix + texts[i] for i in idx])
            ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
            states = encoder(input_ids=ids_t, attention_mask=mask_t,
                             token_type_ids=torch.zeros_like(ids_t),
                             output_hidden_states=True).hidden_states
            pooled = masked_mean_layers(states, mask_t, layers)
            out[idx] = pooled.reshape(len(idx), ALL_LAYERS, -1).numpy().astype(np.float16)
    return out


def cached_features(checkpoint: Path, texts_path: Path, texts: list[str], spec: HeadSpec,
                    cache_dir: Path, log: Callable[[str], None]) -> np.ndarray:
    key = "-".join([
        _file_digest(checkpoint / "model.safetensors"),
        _file_digest(checkpoint / "tokenizer.json"),
        hashlib.sha256(f"{spec.prefix}|{spec.max_length}|{NORMALISATION}".encode()).hexdigest()[:8],
        _file_digest(texts_path),
    ])
    path = cache_dir / f"{texts_path.stem}.{key}.npy"
    if path.is_file():
        return np.load(path)
    log(f"encoding {len(texts)} texts of {texts_path.name} (cached afterwards in {cache_dir})")
    started = time.monotonic()
    # The texts the model is trained on go through the serving normalisation, so that
    # training and serving see the same strings (the English files end every line with a
    # space, which would otherwise become a trailing token seen in training only).
    normalised = [normalise_model_input(t) for t in texts]
    features = encode_all_layers(checkpoint, normalised, spec.prefix, spec.max_length)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), features)
    path.with_suffix(".tmp.npy").rename(path)
    log(f"encoded in {time.monotonic() - started:.0f} s")
    return features


def select(features: np.ndarray, spec: HeadSpec) -> np.ndarray:
    return features[:, list(spec.layers)].astype(np.float32).reshape(len(features), -1)


def fit_head(x: np.ndarray, y: np.ndarray, config: TrainConfig, seed: int) -> Head:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-for-bit reproducible reductions
    try:
        mean = x.mean(0)
        std = x.std(0) + 1e-6
        xt = torch.from_numpy((x - mean) / std)
        yt = torch.from_numpy(y.astype(np.int64))
        dims = [x.shape[1], *config.spec.hidden, 3]
        layers: list[nn.Module] = []
        linears: list[nn.Linear] = []
        for i in range(len(dims) - 1):
            if i > 0:
                layers += [nn.GELU(approximate="tanh"), nn.Dropout(config.dropout)]
            elif config.spec.hidden:
                layers.append(nn.Dropout(config.dropout))
            linears.append(nn.Linear(dims[i], dims[i + 1]))
            layers.append(linears[-1])
        net = nn.Sequential(*layers)
        counts = np.bincount(y, minlength=3)
        weight = (torch.tensor(len(y) / (3 * counts), dtype=torch.float32)
                  if config.class_weights else None)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        optimiser = torch.optim.AdamW(net.parameters(), lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
        steps_per_epoch = (len(y) + config.batch_size - 1) // config.batch_size
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimiser, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch)
        generator = torch.Generator().manual_seed(seed)
        net.train()
        for _ in range(config.epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), config.batch_size):
                batch = order[start : start + config.batch_size]
                optimiser.zero_grad()
                loss_fn(net(xt[batch]), yt[batch]).backward()
                optimiser.step()
                schedule.step()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    return Head(
        spec=config.spec,
        feature_mean=mean.astype(np.float32),
        feature_std=std.astype(np.float32),
        weights=[lin.weight.detach().numpy().copy() for lin in linears],
        biases=[lin.bias.detach().numpy().copy() for lin in linears],
    )


def train_head(checkpoint: Path, data_dir: Path, out: Path | None, seed: int,
               feature_cache: Path, config: TrainConfig | None = None,
               log: Callable[[str], None] = lambda _msg: None) -> dict:
    """Train, save the head (+ TRAINING.json next to it), return the report."""
    config = config or TrainConfig()
    out = out or DEFAULT_HEAD_PATH
    data_dir = Path(data_dir)

    def load(name: str) -> tuple[np.ndarray, np.ndarray]:
        texts_path = data_dir / f"{name}_text.txt"
        texts, labels = read_labelled(texts_path, data_dir / f"{name}_labels.txt")
        feats = cached_features(checkpoint, texts_path, texts, config.spec, feature_cache, log)
        return select(feats, config.spec), np.array(labels)

    x, y = load(TRAIN_FILE)
    started = time.monotonic()
    head = fit_head(x, y, config, seed)
    log(f"head trained on {len(y)} texts in {time.monotonic() - started:.1f} s (seed {seed})")
    validation = {}
    for name in VALIDATION_FILES:
        if not (data_dir / f"{name}_text.txt").is_file():
            continue
        xv, yv = load(name)
        # Computed with the float16-rounded weights that are actually saved.
        rounded = Head(head.spec, *(_round16(a) for a in (head.feature_mean, head.feature_std)),
                       [_round16(w) for w in head.weights], [_round16(b) for b in head.biases])
        predicted = rounded.logits(xv).argmax(1)
        validation[name] = score(yv.tolist(), predicted.tolist()).as_dict()
    save_head(head, out)
    report = {
        "head": str(out),
        "command": f"vigie model train --seed {seed}",
        "seed": seed,
        "train": {"file": f"{TRAIN_FILE}_text.txt", "rows": int(len(y)),
                  "sha256_16": _file_digest(data_dir / f"{TRAIN_FILE}_text.txt")},
        "config": {**asdict(config), "spec": json.loads(config.spec.to_json())},
        "validation": validation,
        "note": "validation scores of the torch fp32 form (head on cached encoder features)",
    }
    recorded = {**report, "head": out.name}  # relative: the JSON sits next to the head
    out.with_name("TRAINING.json").write_text(json.dumps(recorded, indent=2) + "\n")
    return report


def _round16(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float16).astype(np.float32)


def tokenize_file(checkpoint: Path, texts: list[str], prefix: str,
                  max_length: int) -> list[list[int]]:
    """Token ids as served: normalised text, prefix, truncated, no padding."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    prepared = [prefix + normalise_model_input(t) for t in texts]
    return [e.ids for e in tokenizer.encode_batch(prepared)]


def finetuned_head(model, config: FinetuneConfig) -> Head:  # model: FinetuneModel
    from models.sentiment.training.finetune import adapter_tensors

    width = model.linears[0].in_features
    return Head(
        spec=HeadSpec(layers=config.pool_layers, prefix=config.prefix, hidden=config.head_hidden,
                      max_length=config.max_length, encoder_layers=config.encoder_layers,
                      adapter_scale=config.alpha / config.rank,
                      int8_float_ffn_layers=config.int8_float_ffn_layers),
        # Fine-tuned end to end on raw pooled states: no standardisation to undo.
        feature_mean=np.zeros(width, dtype=np.float32),
        feature_std=np.ones(width, dtype=np.float32),
        weights=[lin.weight.detach().float().cpu().numpy() for lin in model.linears],
        biases=[lin.bias.detach().float().cpu().numpy() for lin in model.linears],
        adapters=adapter_tensors(model.encoder),
    )


def finetune_encoder(checkpoint: Path, data_dir: Path, out: Path | None,
                     config: FinetuneConfig | None = None, device: str = "cpu",
                     log: Callable[[str], None] = lambda _msg: None) -> dict:
    """Fine-tune adapters + head on the training file, save them as the head, return the
    report with validation scores of the saved (float16) weights."""
    from models.sentiment.serving.torch_model import load_encoder
    from models.sentiment.training.finetune import FinetuneConfig, predict, round_to_float16, train

    config = config or FinetuneConfig()
    out = out or DEFAULT_HEAD_PATH
    data_dir = Path(data_dir)

    def load(name: str) -> tuple[list[list[int]], list[int]]:
        texts, labels = read_labelled(data_dir / f"{name}_text.txt",
                                      data_dir / f"{name}_labels.txt")
        return tokenize_file(checkpoint, texts, config.prefix, config.max_length), labels

    encoder = load_encoder(checkpoint)
    pad_id = int(encoder.config.pad_token_id)
    ids, labels = load(TRAIN_FILE)
    started = time.monotonic()
    log(f"fine-tuning {config.encoder_layers} layers (LoRA rank {config.rank}) and the head "
        f"on {len(labels)} texts, {config.epochs} epochs, on {device}")
    model = train(encoder, ids, labels, config, pad_id, device, log)
    log(f"trained in {time.monotonic() - started:.0f} s (seed {config.seed})")
    round_to_float16(model)
    validation = {}
    for name in VALIDATION_FILES:
        if (data_dir / f"{name}_text.txt").is_file():
            val_ids, val_labels = load(name)
            predicted = predict(model, val_ids, pad_id, device).argmax(1)
            validation[name] = score(val_labels, predicted.tolist()).as_dict()
    save_head(finetuned_head(model, config), out)
    report = {
        "head": str(out),
        "command": f"vigie model train --seed {config.seed} --device {device}",
        "seed": config.seed,
        "device": device,
        "train": {"file": f"{TRAIN_FILE}_text.txt", "rows": len(labels),
                  "sha256_16": _file_digest(data_dir / f"{TRAIN_FILE}_text.txt")},
        "config": {"finetune": asdict(config)},
        "validation": validation,
        "note": "validation scores of the saved float16 weights in torch fp32, on the "
                "training device",
    }
    out.with_name("TRAINING.json").write_text(
        json.dumps({**report, "head": out.name}, indent=2) + "\n")
    return report
