"""Fixtures for the sentiment tests: the default model is built once (minutes) into the
project's model cache and reused by every test and every later run."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from models.sentiment.build.default_model import ensure_default_model  # noqa: E402
from models.sentiment.serving.built_model import BuiltModel, built_model  # noqa: E402
from pipeline.sentiment_settings import SentimentSettings  # noqa: E402


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The cache folder holding the built default model (VIGIE_MODEL_DIR or .state/models)."""
    cache_dir = SentimentSettings.from_env().model_dir
    ensure_default_model(cache_dir)
    return cache_dir


@pytest.fixture(scope="session")
def built(model_dir: Path) -> BuiltModel:
    result = built_model(model_dir)
    assert result is not None
    return result


@pytest.fixture(scope="session")
def e5_file():
    from models.sentiment.build.e5_reader import read_e5_bin

    return read_e5_bin()
