"""The language means are used only with the head they were measured on, and saying so."""

from __future__ import annotations

import logging
from pathlib import Path

from models.sentiment import _language_means
from models.sentiment.serving.head import DEFAULT_HEAD_PATH


def test_the_committed_head_gets_its_language_means() -> None:
    means = _language_means(DEFAULT_HEAD_PATH)
    assert means is not None
    assert {"fr", "en"} <= set(means.means)


def test_another_head_gets_no_vectors_and_a_warning(tmp_path: Path, caplog) -> None:
    retrained = tmp_path / "head.safetensors"
    retrained.write_bytes(DEFAULT_HEAD_PATH.read_bytes() + b"retrained")
    with caplog.at_level(logging.WARNING, logger="models.sentiment"):
        assert _language_means(retrained) is None
    assert "measured with another head" in caplog.text
