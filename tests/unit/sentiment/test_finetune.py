"""Low-rank fine-tuning: adapters train, merge into plain weights exactly, and survive the
head file round trip (a tiny BERT built by the test; no data files, no network)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.sentiment.build.convert import merge_adapters
from models.sentiment.serving.head import load_head, save_head
from models.sentiment.training.finetune import (
    FinetuneConfig,
    FinetuneModel,
    LoraLinear,
    adapter_tensors,
    attach_adapters,
    cut_encoder,
    pad_batch,
    predict,
    round_to_float16,
    train,
)
from models.sentiment.training.train import finetuned_head


def tiny_encoder(layers: int = 3):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                        pad_token_id=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertModel(config, add_pooling_layer=False).eval()


def toy_data(n: int = 96) -> tuple[list[list[int]], list[int]]:
    """Label = which of three marker tokens the sequence holds, among random filler."""
    rng = np.random.default_rng(0)
    ids, labels = [], []
    for i in range(n):
        label = i % 3
        filler = rng.integers(10, 40, size=rng.integers(3, 8)).tolist()
        filler.insert(int(rng.integers(0, len(filler))), 5 + label)
        ids.append([0, *filler, 2])
        labels.append(label)
    return ids, labels


def hidden(encoder, ids, mask):
    with torch.no_grad():
        return encoder(input_ids=ids, attention_mask=mask,
                       token_type_ids=torch.zeros_like(ids)).last_hidden_state


def test_config_rejects_pooling_a_layer_that_was_cut():
    with pytest.raises(ValueError, match="pool_layers"):
        FinetuneConfig(encoder_layers=6, pool_layers=(8,))
    with pytest.raises(ValueError, match="encoder_layers"):
        FinetuneConfig(encoder_layers=0, pool_layers=(0,))


def test_fresh_adapters_change_nothing_and_only_adapters_train():
    encoder = tiny_encoder()
    ids, mask = pad_batch([[0, 5, 12, 2], [0, 7, 2]], pad_id=1, device="cpu")
    before = hidden(encoder, ids, mask)
    attach_adapters(encoder, FinetuneConfig(encoder_layers=3, pool_layers=(3,), rank=4))
    assert torch.equal(hidden(encoder, ids, mask), before)  # B starts at zero
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert sum(isinstance(m, LoraLinear) for m in encoder.modules()) == 3 * 6


def test_merged_weights_give_the_adapted_encoders_outputs():
    from transformers import BertModel

    encoder = tiny_encoder(layers=3)
    pristine = {k: v.numpy().copy() for k, v in encoder.state_dict().items()}
    config = FinetuneConfig(encoder_layers=2, pool_layers=(2,), rank=4, alpha=8.0)
    cut_encoder(encoder, config.encoder_layers)
    attach_adapters(encoder, config)
    torch.manual_seed(1)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, LoraLinear):
                module.lora_B.normal_(0, 0.2)  # as if trained
    encoder.eval()
    ids, mask = pad_batch([[0, 5, 12, 30, 2], [0, 7, 2]], pad_id=1, device="cpu")
    adapted = hidden(encoder, ids, mask)

    merged = merge_adapters(pristine, adapter_tensors(encoder), config.alpha / config.rank,
                            config.encoder_layers)
    assert not any(k.startswith("encoder.layer.2.") for k in merged)
    plain = BertModel(encoder.config, add_pooling_layer=False).eval()
    plain.load_state_dict({k: torch.from_numpy(v) for k, v in merged.items()})
    torch.testing.assert_close(hidden(plain, ids, mask), adapted, atol=1e-5, rtol=1e-5)
    assert (hidden(plain, ids, mask) - hidden(tiny_encoder(), ids, mask)).abs().max() > 1e-3


def test_training_learns_the_toy_task_and_the_head_file_round_trips(tmp_path):
    ids, labels = toy_data()
    config = FinetuneConfig(encoder_layers=2, pool_layers=(1, 2), rank=4, alpha=8.0,
                            epochs=25, batch_size=16, learning_rate=1e-2, lora_dropout=0.0,
                            head_dropout=0.0)
    model = train(tiny_encoder(), ids, labels, config, pad_id=1)
    round_to_float16(model)
    accuracy = float((predict(model, ids, pad_id=1, device="cpu").argmax(1)
                      == np.array(labels)).mean())
    assert accuracy > 0.9  # chance is 1/3

    head = finetuned_head(model, config)
    path = save_head(head, tmp_path / "head.safetensors")
    loaded = load_head(path)
    assert loaded.spec.encoder_layers == 2 and loaded.spec.layers == (1, 2)
    assert loaded.spec.adapter_scale == pytest.approx(2.0)
    assert sorted(loaded.adapters) == sorted(head.adapters)
    for key, value in head.adapters.items():
        np.testing.assert_array_equal(loaded.adapters[key], value)  # already float16-exact
    assert isinstance(model, FinetuneModel)


def test_training_is_reproducible_with_a_seed():
    ids, labels = toy_data(48)
    config = FinetuneConfig(encoder_layers=1, pool_layers=(1,), rank=2, epochs=2,
                            batch_size=16)
    first = adapter_tensors(train(tiny_encoder(), ids, labels, config, pad_id=1).encoder)
    second = adapter_tensors(train(tiny_encoder(), ids, labels, config, pad_id=1).encoder)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
