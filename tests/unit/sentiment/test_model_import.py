"""`vigie model import DIR`: a Hugging Face folder checked, exported to ONNX and int8,
verified, and then run by the worker's classifier without torch or a label map."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.sentiment import ClassifierOptions, load_classifier
from tests.unit.sentiment.test_sentiment_hf import TEXTS, save_tiny_bert

ROOT = Path(__file__).resolve().parents[3]
LABELS_3 = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}


def vigie(*args: str, extra_path: str = "") -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "vigie"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, str(ROOT)) if p)
    return subprocess.run([*command, "model", "import", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_an_imported_folder_runs_as_onnx_int8_with_torchs_labels(tmp_path):
    import torch

    source = tmp_path / "tiny-sentiment"
    model, tokenizer = save_tiny_bert(source, LABELS_3)
    result = vigie(str(source), "--labels", "LABEL_0=positive,LABEL_1=negative,"
                   "LABEL_2=neutral", "--model-dir", str(tmp_path / "models"))
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "models" / "imported" / "tiny-sentiment"
    assert f"use it with: VIGIE_MODEL={folder}" in result.stdout
    report = json.loads((folder / "vigie-import.json").read_text())
    assert report["agree"] is True and report["outputs"] == [2, 0, 1]

    # The worker's classifier: int8 ONNX, no label map needed any more.
    classifier = load_classifier(ClassifierOptions(
        model=str(folder), runtime="onnx-int8", cache_dir=tmp_path / "unused"
    ))
    assert classifier.name == f"{folder}/onnx-int8"
    with torch.no_grad():
        encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
        reference = torch.softmax(model(**encoded).logits, -1).numpy()
    for result_row, row in zip(classifier.predict(TEXTS), reference, strict=True):
        by_name = dict(zip(("positive", "negative", "neutral"), row, strict=True))
        for label, probability in by_name.items():
            assert result_row.scores[label] == pytest.approx(probability, abs=0.02)
        assert result_row.label == max(by_name, key=by_name.get)
    assert np.isclose(sum(result_row.scores.values()), 1.0)


def test_labels_that_say_nothing_are_refused_with_what_to_give(tmp_path):
    save_tiny_bert(tmp_path / "m", LABELS_3)
    result = vigie(str(tmp_path / "m"), "--model-dir", str(tmp_path / "models"))
    assert result.returncode == 2
    assert "no Vigie label for model output(s) 0:LABEL_0, 1:LABEL_1, 2:LABEL_2" in result.stderr
    assert "give a label map" in result.stderr
    assert not (tmp_path / "models" / "imported" / "m").exists()


def test_without_torch_the_import_is_refused_clearly(tmp_path):
    save_tiny_bert(tmp_path / "m", {0: "negative", 1: "neutral", 2: "positive"})
    # An environment where `import torch` fails, as where torch is not installed.
    blocked = tmp_path / "no-torch"
    (blocked / "torch").mkdir(parents=True)
    (blocked / "torch" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'torch'\")\n")
    result = vigie(str(tmp_path / "m"), "--model-dir", str(tmp_path / "models"),
                   extra_path=str(blocked))
    assert result.returncode == 2
    assert "exporting them to ONNX needs torch, which is not installed here" in result.stderr
    assert "model.safetensors" in result.stderr and "Traceback" not in result.stderr
