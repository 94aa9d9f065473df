"""The converted checkpoint is a standard transformers model equal to the shipped encoder,
and the built one is that encoder cut to the head's layers with its adapters merged."""

from __future__ import annotations

import numpy as np
import torch

from models.sentiment.build.convert import merge_adapters
from models.sentiment.build.default_model import ensure_checkpoint
from models.sentiment.build.e5_reference import ReferenceTokenizer, numpy_hidden_states
from models.sentiment.serving.head import load_head


def test_converted_encoder_loads_with_automodel_and_matches_numpy_forward(e5_file, model_dir):
    from transformers import AutoModel

    checkpoint = ensure_checkpoint(model_dir)
    model = AutoModel.from_pretrained(str(checkpoint), local_files_only=True).eval()
    assert model.config.model_type == "bert" and model.config.hidden_size == 384
    tokenizer = ReferenceTokenizer(e5_file.vocabulary)
    for text in ("query: Le service client ne répond plus.", "query: great phone!"):
        ids = tokenizer.encode(text)
        with torch.no_grad():
            ours = model(torch.tensor([ids])).last_hidden_state[0].numpy()
        reference = numpy_hidden_states(e5_file, ids)[-1]
        assert ours.shape == (len(ids), 384)
        np.testing.assert_allclose(ours, reference, atol=2e-3)
        # mean-pooled embeddings (what the head reads) point the same way
        a, b = ours.mean(0), reference.mean(0)
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.9999


def test_built_checkpoint_is_the_encoder_cut_with_the_heads_adapters_merged(model_dir, built):
    from safetensors.numpy import load_file
    from transformers import AutoConfig

    head = load_head(built.head)
    assert head.adapters, "the default head is fine-tuned: it carries encoder adapters"
    config = AutoConfig.from_pretrained(str(built.checkpoint), local_files_only=True)
    assert config.num_hidden_layers == head.spec.encoder_layers
    pristine = load_file(str(ensure_checkpoint(model_dir) / "model.safetensors"))
    ours = load_file(str(built.checkpoint / "model.safetensors"))
    expected = merge_adapters(pristine, head.adapters, head.spec.adapter_scale,
                              head.spec.encoder_layers)
    assert sorted(ours) == sorted(expected)
    assert not any(k.startswith(f"encoder.layer.{head.spec.encoder_layers}.") for k in ours)
    for key, value in expected.items():
        np.testing.assert_array_equal(ours[key], value, err_msg=key)
    # the adapters really changed the weights they target, and nothing else
    query = "encoder.layer.0.attention.self.query.weight"
    assert np.abs(ours[query] - pristine[query]).max() > 1e-4
    np.testing.assert_array_equal(ours["embeddings.word_embeddings.weight"],
                                  pristine["embeddings.word_embeddings.weight"])
