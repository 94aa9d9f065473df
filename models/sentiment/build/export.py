"""ONNX export of the end-to-end model and its int8 (dynamic, per-channel) version."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

ONNX_OPSET = 17
INPUT_NAMES = ["input_ids", "attention_mask"]
OUTPUT_NAME = "probabilities"


def export_onnx(model, path: Path) -> Path:  # model: E5SentimentModel
    """TorchScript-based exporter (`dynamo=False`): it needs no onnxscript and gives one
    plain graph with dynamic batch and sequence axes."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[0, 1294, 12, 33600, 2], [0, 9312, 2, 1, 1]], dtype=torch.long)
    mask = (ids != 1).long()
    dynamic = {0: "batch", 1: "sequence"}
    # The tracer warns about shape arithmetic in transformers' mask helpers; for an
    # encoder-only BERT those values are the same for every input (checked by the build's
    # label agreement on sentences of other lengths and batch sizes).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index")
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=INPUT_NAMES,
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                "input_ids": dynamic, "attention_mask": dynamic, OUTPUT_NAME: {0: "batch"}
            },
            opset_version=ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    return path


# An FFN-output input channel is an outlier when its peak |value| on the check sentences
# exceeds this many times the 99th percentile of all channels' peaks. In the default
# model one channel per sensitive layer stands out: 70 and 32 against about 5.
OUTLIER_FACTOR = 4.0


def ffn_outlier_channels(model, input_ids, attention_mask,
                         layers: tuple[int, ...]) -> dict[int, list[int]]:
    """Per listed layer, the input channels of its FFN output projection (after GELU) whose
    values dwarf the others'. model: E5SentimentModel; inputs: one padded batch."""
    import numpy as np
    import torch

    peaks: dict[int, np.ndarray] = {}
    hooks = []
    for layer in layers:
        def record(_module, inputs, _output, layer=layer):
            peaks[layer] = inputs[0].detach().abs().amax(dim=(0, 1)).numpy()

        dense = model.encoder.encoder.layer[layer].output.dense
        hooks.append(dense.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(input_ids, attention_mask)
    finally:
        for hook in hooks:
            hook.remove()
    return {
        layer: [int(c) for c in np.flatnonzero(peak > OUTLIER_FACTOR * np.percentile(peak, 99))]
        for layer, peak in sorted(peaks.items())
    }


def _ffn_output_matmuls(model, ffn_size: int, hidden_size: int) -> list:
    """The FFN output projections in layer order (the graph lists layers in order)."""
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    return [node for node in model.graph.node
            if node.op_type == "MatMul" and shapes.get(node.input[1]) == (ffn_size, hidden_size)]


def sensitive_nodes(source: Path, float_ffn_layers: tuple[int, ...] | None = None,
                    ffn_size: int = 1536, hidden_size: int = 384) -> list[str]:
    """Nodes kept in fp32: the head's Gemms (tiny, and any noise there reaches the labels
    directly) and FFN output projections, whose input (after GELU) has outliers that one
    per-tensor activation scale cannot cover: all of them when `float_ffn_layers` is None,
    else only those of the listed layers.

    Measured for the fine-tuned 8-layer model (models/sentiment/RESULTS.md): one layer's
    FFN output (layer 4) causes almost all of the int8 label flips; quantising the others
    costs nothing measurable and gains about 20 % of speed."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    keep = []
    for node in model.graph.node:
        if node.op_type == "Gemm":
            # Dynamic quantisation first rewrites every Gemm as MatMul + Add, the MatMul
            # named after the Gemm with "_MatMul": excluding the Gemm's name alone is not
            # enough to keep it in float.
            keep += [node.name, f"{node.name}_MatMul"]
    for layer, node in enumerate(_ffn_output_matmuls(model, ffn_size, hidden_size)):
        if float_ffn_layers is None or layer in float_ffn_layers:
            keep.append(node.name)
    return keep


def split_outlier_channels(source: Path, target: Path, outliers: dict[int, list[int]],
                           ffn_size: int = 1536, hidden_size: int = 384) -> list[str]:
    """Rewrite the listed layers' FFN output projection y = x W as
    (x * mask) W + x[..., outliers] W[outliers]: the first product, whose input no longer
    holds the outlier channels, can take one int8 activation scale; the second, k columns
    wide, stays in float. Returns the names of those float products."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    split_nodes = {node.name: layer for layer, node in
                   enumerate(_ffn_output_matmuls(model, ffn_size, hidden_size))
                   if outliers.get(layer)}
    nodes, float_products = [], []
    for node in graph.node:
        layer = split_nodes.get(node.name)
        if layer is None:
            nodes.append(node)
            continue
        channels = np.array(outliers[layer], dtype=np.int64)
        weight = numpy_helper.to_array(weights[node.input[1]])
        mask = np.ones(ffn_size, dtype=np.float32)
        mask[channels] = 0.0
        name = f"/ffn_outliers_{layer}"
        graph.initializer.extend([
            numpy_helper.from_array(mask, f"{name}/mask"),
            numpy_helper.from_array(channels, f"{name}/channels"),
            numpy_helper.from_array(weight[channels, :].astype(np.float32), f"{name}/weight"),
        ])
        x, y = node.input[0], node.output[0]
        nodes += [
            helper.make_node("Mul", [x, f"{name}/mask"], [f"{name}/x_rest"], name=f"{name}/Mul"),
            helper.make_node("MatMul", [f"{name}/x_rest", node.input[1]], [f"{name}/y_rest"],
                             name=node.name),
            helper.make_node("Gather", [x, f"{name}/channels"], [f"{name}/x_outliers"],
                             name=f"{name}/Gather", axis=2),
            helper.make_node("MatMul", [f"{name}/x_outliers", f"{name}/weight"],
                             [f"{name}/y_outliers"], name=f"{name}/MatMul"),
            helper.make_node("Add", [f"{name}/y_rest", f"{name}/y_outliers"], [y],
                             name=f"{name}/Add"),
        ]
        float_products.append(f"{name}/MatMul")
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(target))
    return float_products


def quantize_int8(source: Path, target: Path,
                  float_ffn_layers: tuple[int, ...] | None = None,
                  outliers: dict[int, list[int]] | None = None,
                  ffn_size: int = 1536, hidden_size: int = 384) -> Path:
    """Dynamic int8 with per-channel weight scales (per-tensor scales changed labels).

    A layer in `float_ffn_layers` keeps its FFN output projection in float, unless
    `outliers` names that layer's outlier channels: then only those stay in float
    (`split_outlier_channels`), which measured 10 % faster with the same quality."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs advice meant for static quantisation
    try:
        if outliers:
            split = target.with_name(target.stem + ".split.onnx")
            try:
                float_products = split_outlier_channels(source, split, outliers, ffn_size,
                                                        hidden_size)
                still_float = tuple(layer for layer in float_ffn_layers or ()
                                    if not outliers.get(layer))
                keep = sensitive_nodes(split, still_float, ffn_size, hidden_size)
                _quantize(split, target, keep + float_products)
            finally:
                split.unlink(missing_ok=True)
        else:
            keep = sensitive_nodes(source, float_ffn_layers, ffn_size, hidden_size)
            _quantize(source, target, keep)
    finally:
        root.setLevel(level)
    return target


def _quantize(source: Path, target: Path, keep_float: list[str]) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
        nodes_to_exclude=keep_float,
    )
