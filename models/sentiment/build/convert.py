"""Turn the shipped 4-bit e5 file into a standard transformers checkpoint folder.

The folder holds `model.safetensors` + `config.json` (a `BertModel`, the architecture of
multilingual-e5-small) and a fast tokenizer (`tokenizer.json`), so that
`AutoModel.from_pretrained(folder)` and `AutoTokenizer.from_pretrained(folder)` load it
with no custom code. The tokenizer is saved with `tokenizer_class:
PreTrainedTokenizerFast`: transformers 5 rebuilds the pipeline of an
`XLMRobertaTokenizer` and would drop our normaliser.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import numpy as np

from models.sentiment.build.e5_reader import E5File

MAX_LENGTH = 512


def _normaliser_replacements(model: E5File) -> list[tuple[str, str]]:
    """The map entries that NFKC does not already produce (control chars, odd spaces)."""
    out = []
    for code, replacement in sorted(model.vocabulary.normalisation.items()):
        target = "".join(map(chr, replacement))
        if target != unicodedata.normalize("NFKC", chr(code)):
            out.append((chr(code), target))
    return out


def build_fast_tokenizer(model: E5File):  # -> tokenizers.Tokenizer
    """Unigram over the pieces; the file's normalisation map (as NFKC + a few replacements);
    repeated spaces collapsed; metaspace always prepended; `<s> $A </s>`."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    v = model.vocabulary
    vocab = [(piece, float(score)) for piece, score in zip(v.pieces, v.scores, strict=True)]
    tokenizer = Tokenizer(Unigram(vocab, unk_id=v.unk_id, byte_fallback=False))
    # Control characters are deleted and exotic spaces become spaces before NFKC, as the
    # engine's per-character map does; then runs of spaces collapse into one.
    steps = [normalizers.Replace(src, dst) for src, dst in _normaliser_replacements(model)]
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581",
                                                       prepend_scheme="always")
    bos, eos = v.pieces[v.bos_id], v.pieces[v.eos_id]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, v.bos_id), (eos, v.eos_id)],
    )
    from tokenizers import decoders

    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return tokenizer


def bert_state_dict(model: E5File) -> dict[str, np.ndarray]:
    """The file's tensors under `BertModel` parameter names (Linear weights stay [out, in])."""
    t = model.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(model.config.num_layers):
        for short, long in names.items():
            for src, dst in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{layer}.{long}.{dst}"] = t[f"l{layer}.{short}.{src}"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def merge_adapters(state: dict[str, np.ndarray], adapters: dict[str, np.ndarray],
                   scale: float, layers: int) -> dict[str, np.ndarray]:
    """A `BertModel` state dict (numpy) with the adapters merged and layers >= `layers` cut.

    Computed in float64 then rounded once to float32, so the merge is deterministic."""
    merged = {k: v for k, v in state.items()
              if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < layers}
    for key, a in adapters.items():
        if not key.endswith(".lora_A"):
            continue
        prefix = key[: -len(".lora_A")]
        b = adapters[prefix + ".lora_B"]
        weight = prefix + ".weight"
        if weight not in merged:
            raise KeyError(f"adapter {prefix} has no weight {weight} in the encoder")
        delta = (b.astype(np.float64) @ a.astype(np.float64)) * scale
        merged[weight] = (merged[weight].astype(np.float64) + delta).astype(np.float32)
    return merged


def _transformers_version() -> str:
    # Recorded like save_pretrained does; without it transformers 5 suspects an old
    # Mistral tokenizer and prints a misleading warning on every load.
    try:
        import transformers

        return transformers.__version__
    except ImportError:
        return "5.0.0"


def bert_config_dict(model: E5File) -> dict:
    c = model.config
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "intermediate_size": c.ffn_size,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": c.max_positions,
        "type_vocab_size": c.type_vocab_size,
        "layer_norm_eps": c.layer_norm_eps,
        "initializer_range": 0.02,
        "pad_token_id": model.vocabulary.pad_id,
        "position_embedding_type": "absolute",
        "transformers_version": _transformers_version(),
    }


def write_checkpoint(model: E5File, folder: Path, layers: int | None = None,
                     adapters: dict[str, np.ndarray] | None = None,
                     adapter_scale: float = 0.0) -> Path:
    """Write config.json, model.safetensors and the tokenizer files into `folder`: the
    shipped encoder as is, or cut to `layers` layers with fine-tuned adapters merged."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = bert_config_dict(model)
    state = bert_state_dict(model)
    if layers is not None or adapters:
        layers = layers or model.config.num_layers
        state = merge_adapters(state, adapters or {}, adapter_scale, layers)
        config["num_hidden_layers"] = layers
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    # One metadata key: safetensors writes several in no fixed order, and the file's hash
    # keys the training feature cache, so the same source must give the same bytes.
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    tokenizer = build_fast_tokenizer(model)
    tokenizer.save(str(folder / "tokenizer.json"))
    v = model.vocabulary
    special = {
        "bos_token": v.pieces[v.bos_id],
        "eos_token": v.pieces[v.eos_id],
        "sep_token": v.pieces[v.eos_id],
        "cls_token": v.pieces[v.bos_id],
        "pad_token": v.pieces[v.pad_id],
        "unk_token": v.pieces[v.unk_id],
    }
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_LENGTH,
        "padding_side": "right",
        **special,
    }, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")
    return folder
