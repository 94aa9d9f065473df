"""The torch form of Vigie's model: the converted encoder plus the head, end to end.

Only the build (ONNX export), training and the `torch` runtime import this module; the
default ONNX Runtime path never loads torch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.sentiment.serving.head import Head


def masked_mean_layers(
    hidden_states: tuple[torch.Tensor, ...], attention_mask: torch.Tensor, layers: tuple[int, ...]
) -> torch.Tensor:
    """Mean over real tokens of each chosen hidden state, concatenated: [batch, k * hidden]."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states[0].dtype)
    count = mask.sum(1).clamp(min=1.0)
    return torch.cat([(hidden_states[i] * mask).sum(1) / count for i in layers], dim=-1)


class HeadModule(nn.Module):
    """The head as torch layers (standardise, MLP with tanh-GELU, logits)."""

    def __init__(self, head: Head) -> None:
        super().__init__()
        self.register_buffer("feature_mean", torch.tensor(head.feature_mean))
        self.register_buffer("feature_std", torch.tensor(head.feature_std))
        self.linears = nn.ModuleList()
        for w, b in zip(head.weights, head.biases, strict=True):
            linear = nn.Linear(w.shape[1], w.shape[0])
            with torch.no_grad():
                linear.weight.copy_(torch.tensor(w))
                linear.bias.copy_(torch.tensor(b))
            self.linears.append(linear)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.feature_mean) / self.feature_std
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i < len(self.linears) - 1:
                x = nn.functional.gelu(x, approximate="tanh")
        return x


class E5SentimentModel(nn.Module):
    """input_ids, attention_mask -> probabilities [batch, 3] (negative, neutral, positive)."""

    def __init__(self, encoder: nn.Module, head: Head) -> None:
        super().__init__()
        self.encoder = encoder
        self.layers = head.spec.layers
        self.head = HeadModule(head)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
            output_hidden_states=True,
        )
        features = masked_mean_layers(out.hidden_states, attention_mask, self.layers)
        return torch.softmax(self.head(features), dim=-1)


def load_encoder(checkpoint: Path) -> nn.Module:
    """The converted checkpoint through the standard AutoModel path (eager attention, which
    exports to ONNX cleanly and is what the int8 graph is checked against)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()  # the e5 checkpoint has no pooler; that is expected
    hf_logging.disable_progress_bar()
    try:
        encoder = AutoModel.from_pretrained(
            str(checkpoint), attn_implementation="eager", local_files_only=True
        )
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return encoder.eval()


def load_torch_model(checkpoint: Path, head: Head) -> E5SentimentModel:
    return E5SentimentModel(load_encoder(checkpoint), head).eval()
