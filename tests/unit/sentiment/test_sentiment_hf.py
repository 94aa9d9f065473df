"""Any Hugging Face text-classification model: a tiny BERT built and saved by the test,
loaded back through AutoModelForSequenceClassification/AutoTokenizer with a label map."""

from __future__ import annotations

import numpy as np
import pytest

from models.sentiment import LABELS, ClassifierOptions, ModelLoadError, load_classifier
from models.sentiment.serving.backends import parse_label_map

TEXTS = ["great product", "terrible service", "the shop opens monday", "great great great"]


def save_tiny_bert(folder, id2label):
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "great", "product", "terrible", "service",
             "the", "shop", "opens", "monday"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]",
                                        unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                        num_labels=len(id2label), id2label=id2label,
                        label2id={v: k for k, v in id2label.items()})
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer


def test_label_mapping_is_applied_end_to_end(tmp_path):
    import torch

    model, tokenizer = save_tiny_bert(tmp_path, {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    label_map = parse_label_map("LABEL_0=positive, LABEL_1=negative, LABEL_2=neutral")
    clf = load_classifier(ClassifierOptions(
        model=str(tmp_path), runtime="onnx-int8", label_map=label_map, cache_dir=tmp_path / "unused"
    ))
    assert clf.name == f"{tmp_path}/torch"  # no model.onnx in the folder: torch
    results = clf.predict(TEXTS)
    # the same model run by hand, then remapped: output 0 -> positive, 1 -> negative...
    with torch.no_grad():
        enc = tokenizer(TEXTS, padding=True, return_tensors="pt")
        probs = torch.softmax(model(**enc).logits, -1).numpy()
    for result, row in zip(results, probs, strict=True):
        assert result.scores["positive"] == pytest.approx(row[0], abs=1e-5)
        assert result.scores["negative"] == pytest.approx(row[1], abs=1e-5)
        assert result.scores["neutral"] == pytest.approx(row[2], abs=1e-5)
        assert result.label == ("positive", "negative", "neutral")[int(np.argmax(row))]


def test_two_label_model_by_index_and_names_recognised(tmp_path):
    save_tiny_bert(tmp_path / "two", {0: "LABEL_0", 1: "LABEL_1"})
    clf = load_classifier(ClassifierOptions(
        model=str(tmp_path / "two"), runtime="torch", label_map={"0": "negative", "1": "positive"}
    ))
    result = clf.predict(["terrible service"])[0]
    assert result.scores["neutral"] == 0.0
    assert result.scores["negative"] + result.scores["positive"] == pytest.approx(1.0)

    save_tiny_bert(tmp_path / "named", {0: "NEG", 1: "NEU", 2: "POS"})
    named = load_classifier(ClassifierOptions(model=str(tmp_path / "named"), runtime="torch"))
    assert named.predict(["great"])[0].label in LABELS


def test_unmapped_labels_and_missing_models_are_clear_errors(tmp_path):
    save_tiny_bert(tmp_path / "m", {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})
    with pytest.raises(ModelLoadError, match="VIGIE_MODEL_LABELS"):
        load_classifier(ClassifierOptions(model=str(tmp_path / "m"), runtime="torch"))
    with pytest.raises(ModelLoadError, match="offline"):
        load_classifier(ClassifierOptions(model=str(tmp_path / "absent"), runtime="torch"))
    with pytest.raises(ModelLoadError, match="offline"):
        load_classifier(ClassifierOptions(model="some-org/not-in-the-local-cache", runtime="torch"))
    with pytest.raises(ValueError, match="target must be one of"):
        parse_label_map("LABEL_0=angry")
