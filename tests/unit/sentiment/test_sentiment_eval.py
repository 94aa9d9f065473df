"""Metrics against a hand-computed case, data file errors, and `vigie sentiment eval`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from models.sentiment.training.evaluation import DataFileError, read_labelled, score
from pipeline.cli import main


def test_scores_match_a_hand_computed_case():
    gold = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
    pred = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]
    s = score(gold, pred)
    # recall: neg 2/4, neu 2/3, pos 2/3; precision: neg 2/3, neu 2/4, pos 2/3
    assert s.n == 10 and s.accuracy == pytest.approx(0.6)
    assert s.recall == pytest.approx({"negative": 0.5, "neutral": 2 / 3, "positive": 2 / 3})
    assert s.macro_recall == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    f1_neg = 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    f1_neu = 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)
    assert s.macro_f1 == pytest.approx((f1_neg + f1_neu + 2 / 3) / 3)


def test_a_class_never_predicted_scores_zero_not_an_error():
    s = score([0, 1, 2], [0, 0, 0])
    assert s.recall == {"negative": 1.0, "neutral": 0.0, "positive": 0.0}
    assert s.f1["neutral"] == 0.0 and s.macro_f1 == pytest.approx((2 * (1 / 3) / (4 / 3)) / 3)


def test_bad_files_give_clear_errors(tmp_path):
    texts, labels = tmp_path / "t.txt", tmp_path / "l.txt"
    texts.write_text("a\nb\n")
    labels.write_text("0\n3\n")
    with pytest.raises(DataFileError, match=r"l.txt:2: expected 0, 1 or 2"):
        read_labelled(texts, labels)
    labels.write_text("0")
    with pytest.raises(DataFileError, match="has 2 lines but"):
        read_labelled(texts, labels)
    labels.write_text("0\n2")  # no final newline, as in the XLM-T files
    assert read_labelled(texts, labels) == (["a", "b"], [0, 2])


def test_cli_eval_prints_one_json_object(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIE_MODEL_DIR", str(model_dir))
    texts, labels = tmp_path / "t.txt", tmp_path / "l.txt"
    texts.write_text("Je déteste ce produit, arnaque totale\nJ'adore, merci beaucoup !\n"
                     "The shop opens at 9am tomorrow\nWorst customer service ever\n")
    labels.write_text("0\n2\n1\n0\n")
    result = CliRunner().invoke(main, ["sentiment", "eval", "--texts", str(texts),
                                       "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == 4 and report["model"] == "vigie-e5-small/onnx-int8"
    assert set(report["recall"]) == {"negative", "neutral", "positive"}
    assert 0.0 <= report["macro_recall"] <= 1.0 and report["posts_per_s"] > 0
    assert report["recall"]["negative"] == 1.0  # two blatant complaints


def test_cli_eval_rejects_a_bad_labels_file(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIE_MODEL_DIR", str(model_dir))
    texts, labels = tmp_path / "t.txt", tmp_path / "l.txt"
    texts.write_text("a\n")
    labels.write_text("negative\n")
    result = CliRunner().invoke(main, ["sentiment", "eval", "--texts", str(texts),
                                       "--labels", str(labels)])
    assert result.exit_code == 2 and "expected 0, 1 or 2" in result.output
