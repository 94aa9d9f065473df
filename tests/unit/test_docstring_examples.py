"""The examples in the docstrings of models/ run, and every public estimator has one.

River's habit: an estimator's docstring shows it at work, and the tests run that example,
so the documentation cannot drift from the code.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from datetime import UTC, datetime

import pytest

import models
from models.detection import (
    BrandMonitor,
    IncidentLifecycle,
    OnlineDetector,
    SeriesDetector,
    SpikeDetector,
    TailCalibrator,
    VolumeDetector,
)
from models.detection.config import DetectorConfig
from models.detection.storylines import StorylineSet
from models.detection.terms import TermBaseline
from models.sentiment import SentimentClassifier

MODULES = sorted(info.name for info in pkgutil.walk_packages(models.__path__, "models."))

# What learns from data or judges it, one call at a time: what a reader of models/ uses.
ESTIMATORS = (
    BrandMonitor,
    IncidentLifecycle,
    SentimentClassifier,
    SeriesDetector,
    SpikeDetector,
    StorylineSet,
    TailCalibrator,
    TermBaseline,
    VolumeDetector,
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed"


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_every_public_estimator_shows_an_example(estimator: type) -> None:
    tests = doctest.DocTestFinder(recurse=False).find(estimator)
    assert any(test.examples for test in tests), f"{estimator.__name__} has no example"


def test_the_detectors_of_one_series_speak_one_protocol() -> None:
    t = datetime(2026, 11, 2, tzinfo=UTC)
    for detector in (VolumeDetector(interval_seconds=60), SpikeDetector(DetectorConfig())):
        assert isinstance(detector, OnlineDetector)
        detector.learn_one(t, 5)
        assert detector.score_one(t, 5).z == pytest.approx(0.0, abs=1e-9)
