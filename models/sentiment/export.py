"""ONNX export of the end-to-end model and its int8 (dynamic, per-channel) version."""

from __future__ import annotations

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
    with torch.no_grad():
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


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 with per-channel weight scales: per-tensor scales changed labels."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    return target
