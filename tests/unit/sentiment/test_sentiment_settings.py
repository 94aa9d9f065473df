from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.sentiment_settings import SentimentSettings
from pipeline.settings import SettingError, project_root


def test_defaults(monkeypatch):
    for name in ("VIGIE_MODEL", "VIGIE_MODEL_RUNTIME", "VIGIE_MODEL_THREADS",
                 "VIGIE_MODEL_BATCH_SIZE", "VIGIE_MODEL_CACHE_SIZE", "VIGIE_MODEL_LABELS",
                 "VIGIE_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    s = SentimentSettings.from_env()
    assert (s.model, s.runtime, s.threads, s.batch_size, s.cache_size) == (
        "", "onnx-int8", 2, 16, 10_000)
    assert s.model_dir == project_root() / ".state" / "models"
    assert s.label_map() is None


def test_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VIGIE_MODEL", "cardiffnlp/twitter-xlm-roberta-base-sentiment")
    monkeypatch.setenv("VIGIE_MODEL_RUNTIME", "torch")
    monkeypatch.setenv("VIGIE_MODEL_THREADS", "4")
    monkeypatch.setenv("VIGIE_MODEL_LABELS", "LABEL_0=negative,LABEL_1=neutral,LABEL_2=positive")
    monkeypatch.setenv("VIGIE_MODEL_DIR", str(tmp_path))
    s = SentimentSettings.from_env()
    assert s.runtime == "torch" and s.threads == 4 and s.model_dir == Path(tmp_path)
    assert s.label_map() == {"LABEL_0": "negative", "LABEL_1": "neutral", "LABEL_2": "positive"}


@pytest.mark.parametrize("name,value,message", [
    ("VIGIE_MODEL_RUNTIME", "gpu", "expected one of"),
    ("VIGIE_MODEL_THREADS", "0", "at least 1"),
    ("VIGIE_MODEL_LABELS", "LABEL_0", "expected MODEL_LABEL=vigie_label"),
])
def test_bad_values_fail_at_start(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=message):
        SentimentSettings.from_env()
