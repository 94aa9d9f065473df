"""The converted checkpoint is a standard transformers model equal to the shipped encoder."""

from __future__ import annotations

import numpy as np
import torch

from models.sentiment.e5_reference import ReferenceTokenizer, numpy_hidden_states


def test_checkpoint_loads_with_automodel_and_matches_numpy_forward(e5_file, built):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(built.checkpoint), local_files_only=True).eval()
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
