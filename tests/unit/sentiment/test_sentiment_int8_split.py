"""The int8 export's outlier split, on a small FFN-output-like graph built here."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from models.sentiment.build.export import quantize_int8, split_outlier_channels

FFN, HIDDEN, OUTLIER = 64, 16, 5


def ffn_output_model(path):
    """y = x W, W [FFN, HIDDEN]: the shape by which the export finds FFN outputs."""
    weight = np.random.default_rng(0).normal(0, 0.2, (FFN, HIDDEN)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="/layer.0/output/dense/MatMul")],
        "ffn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", FFN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", HIDDEN])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def activations():
    """Post-GELU-like values in 0..3, with one channel peaking near 70 (as in layer 4)."""
    x = np.random.default_rng(1).uniform(0, 3, (4, 12, FFN)).astype(np.float32)
    x[:, 0, OUTLIER] = 70.0
    return x


def test_the_split_graph_computes_the_same_product(tmp_path):
    ffn_output_model(tmp_path / "plain.onnx")
    names = split_outlier_channels(tmp_path / "plain.onnx", tmp_path / "split.onnx",
                                   {0: [OUTLIER]}, ffn_size=FFN, hidden_size=HIDDEN)
    assert names == ["/ffn_outliers_0/MatMul"]
    x = activations()
    np.testing.assert_allclose(run(tmp_path / "split.onnx", x), run(tmp_path / "plain.onnx", x),
                               rtol=1e-5, atol=1e-4)


def test_int8_with_the_outlier_channel_in_float_is_far_closer_to_fp32(tmp_path):
    ffn_output_model(tmp_path / "plain.onnx")
    shapes = {"ffn_size": FFN, "hidden_size": HIDDEN}
    quantize_int8(tmp_path / "plain.onnx", tmp_path / "plain.int8.onnx", float_ffn_layers=(),
                  **shapes)
    quantize_int8(tmp_path / "plain.onnx", tmp_path / "split.int8.onnx", float_ffn_layers=(0,),
                  outliers={0: [OUTLIER]}, **shapes)
    assert not list(tmp_path.glob("*.split.onnx"))  # the intermediate graph is removed
    x = activations()
    exact = run(tmp_path / "plain.onnx", x)
    plain_error = np.abs(run(tmp_path / "plain.int8.onnx", x) - exact).mean()
    split_error = np.abs(run(tmp_path / "split.int8.onnx", x) - exact).mean()
    # One activation scale for 0..70 leaves steps of 0.27 for the 0..3 values; without the
    # outlier channel the steps are 0.012.
    assert split_error < plain_error / 5
