"""Fine-tuning e5-small with low-rank adapters (LoRA), so that the result stays small.

The shipped encoder cannot be committed (470 MB once dequantised) and a full fine-tune
would change all of it. Instead each Linear of the kept encoder layers learns a low-rank
update `W + (B @ A) * alpha / rank`, trained together with Vigie's head; only A and B
(about a megabyte or two in float16) are committed with the head. `vigie model build`
merges them into the converted checkpoint, so ONNX export, int8 and every runtime see a
plain `BertModel` with no adapter code.

The encoder may also be cut after `encoder_layers` layers: a cut model fine-tuned end to
end keeps most of the quality at a fraction of the cost per post.

Torch only; imported by `vigie model train`, never by the build or the runtimes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# The Linear layers of one BertLayer that get adapters, by their module path.
LORA_TARGETS: tuple[str, ...] = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


@dataclass(frozen=True)
class FinetuneConfig:
    # Chosen on the validation files (head/TRAINING.md): 8 of 12 layers, last one pooled.
    encoder_layers: int = 8  # layers kept (the rest are cut off)
    pool_layers: tuple[int, ...] = (8,)  # hidden states averaged into the head's input
    rank: int = 16
    alpha: float = 32.0
    lora_dropout: float = 0.1
    head_hidden: tuple[int, ...] = ()  # () = linear head
    head_dropout: float = 0.1
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 5e-4  # adapters and head
    weight_decay: float = 0.01
    warmup: float = 0.06  # share of the steps with a rising learning rate
    class_weights: bool = True
    max_length: int = 128
    seed: int = 0
    # Prepended to every text. e5 was pre-trained with "query: ", but fine-tuned without it
    # the model scored as well or better on the English files and within seed noise in
    # French, and the prefix is 3 of the 30-35 tokens of a typical post (RESULTS.md).
    prefix: str = ""
    # Not a training setting: recorded in the head for the build's int8 form. Layers 4 and 5
    # were measured as the int8-sensitive ones of the seed-0 model (RESULTS.md); a model
    # trained otherwise may need others, and the build's label check only catches gross
    # cases, so measure again (or set None: every FFN output stays in float).
    int8_float_ffn_layers: tuple[int, ...] | None = (4, 5)

    def __post_init__(self) -> None:
        if not 1 <= self.encoder_layers <= 12:
            raise ValueError("encoder_layers must be between 1 and 12")
        if not self.pool_layers or max(self.pool_layers) > self.encoder_layers:
            raise ValueError("pool_layers must be hidden states of the kept layers")


class LoraLinear(nn.Module):
    """A frozen Linear plus a trainable low-rank update (B starts at zero: no change)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scale = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (self.dropout(x) @ self.lora_A.T) @ self.lora_B.T
        return self.base(x) + update * self.scale


def _submodule(root: nn.Module, path: str) -> tuple[nn.Module, str]:
    *parents, leaf = path.split(".")
    for name in parents:
        root = getattr(root, name)
    return root, leaf


def cut_encoder(encoder: nn.Module, layers: int) -> nn.Module:
    """Keep the first `layers` BertLayers (the config follows, for export and saving)."""
    encoder.encoder.layer = encoder.encoder.layer[:layers]
    encoder.config.num_hidden_layers = layers
    return encoder


def attach_adapters(encoder: nn.Module, config: FinetuneConfig) -> None:
    for p in encoder.parameters():
        p.requires_grad_(False)
    for layer in encoder.encoder.layer:
        for target in LORA_TARGETS:
            parent, leaf = _submodule(layer, target)
            setattr(parent, leaf, LoraLinear(getattr(parent, leaf), config.rank, config.alpha,
                                             config.lora_dropout))


def round_to_float16(model: nn.Module) -> None:
    """Round the trained weights as the committed file stores them (float16), so that the
    reported scores are those of what is saved."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(p.half().float())


def adapter_tensors(encoder: nn.Module) -> dict[str, np.ndarray]:
    """`encoder.layer.{i}.{target}.lora_A|lora_B` as float32 arrays."""
    out = {}
    for i, layer in enumerate(encoder.encoder.layer):
        for target in LORA_TARGETS:
            parent, leaf = _submodule(layer, target)
            module = getattr(parent, leaf)
            for name in ("lora_A", "lora_B"):
                key = f"encoder.layer.{i}.{target}.{name}"
                out[key] = getattr(module, name).detach().float().cpu().numpy().copy()
    return out


class FinetuneModel(nn.Module):
    """Encoder with adapters -> masked mean of the pooled layers -> head logits."""

    def __init__(self, encoder: nn.Module, config: FinetuneConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.pool_layers = config.pool_layers
        hidden = encoder.config.hidden_size
        dims = [hidden * len(config.pool_layers), *config.head_hidden, 3]
        self.linears = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1))
        self.dropout = nn.Dropout(config.head_dropout)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=ids, attention_mask=mask,
                           token_type_ids=torch.zeros_like(ids), output_hidden_states=True)
        weights = mask.unsqueeze(-1).to(out.hidden_states[0].dtype)
        count = weights.sum(1).clamp(min=1.0)
        x = torch.cat([(out.hidden_states[i] * weights).sum(1) / count
                       for i in self.pool_layers], dim=-1)
        for i, linear in enumerate(self.linears):
            x = linear(self.dropout(x))
            if i < len(self.linears) - 1:
                x = nn.functional.gelu(x, approximate="tanh")
        return x


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int,
              device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids.to(device), mask.to(device)


def predict(model: FinetuneModel, token_ids: Sequence[Sequence[int]], pad_id: int,
            device: torch.device | str, batch_size: int = 128) -> np.ndarray:
    """Probabilities [n, 3] in input order (batches sorted by length, as serving does)."""
    model.eval()
    order = np.argsort([len(s) for s in token_ids], kind="stable")
    out = np.zeros((len(token_ids), 3), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = pad_batch([token_ids[i] for i in idx], pad_id, device)
            out[idx] = torch.softmax(model(ids, mask).float(), dim=-1).cpu().numpy()
    return out


def train(encoder: nn.Module, token_ids: Sequence[Sequence[int]], labels: Sequence[int],
          config: FinetuneConfig, pad_id: int, device: torch.device | str = "cpu",
          log: Callable[[str], None] = lambda _msg: None) -> FinetuneModel:
    """Cut the encoder, attach adapters, train adapters + head; returns the model (eval)."""
    torch.manual_seed(config.seed)
    cut_encoder(encoder, config.encoder_layers)
    attach_adapters(encoder, config)
    model = FinetuneModel(encoder, config).to(device)
    y = torch.tensor(list(labels), dtype=torch.long)
    counts = torch.bincount(y, minlength=3).double()
    weight = (len(y) / (3 * counts)).float().to(device) if config.class_weights else None
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(y) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(total * config.warmup))

    def rate(step: int) -> float:  # linear warm-up, then linear decay to zero
        return step / warmup if step < warmup else max(0.0, (total - step) / (total - warmup))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.monotonic()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator).tolist()
        running = 0.0
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            ids, mask = pad_batch([token_ids[i] for i in batch], pad_id, device)
            loss = loss_fn(model(ids, mask), y[batch].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            running += float(loss.detach())
        log(f"epoch {epoch + 1}/{config.epochs}: loss {running / steps_per_epoch:.4f} "
            f"({time.monotonic() - started:.0f} s)")
    return model.eval()
