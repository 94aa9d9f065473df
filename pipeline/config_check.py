"""`vigie config check`: everything a worker would refuse, found before it starts.

Like `promtool check config` or `amtool check-config`: it reads every `VIGIE_*` setting,
the watchlist, every receiver (secrets read from their variables and files, nothing
sent) and the sentiment model's folder, and reports every problem at once, each with the
variable, or the file, line and column, and a "did you mean" for a misspelt name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.settings import (
    KafkaSettings,
    SettingError,
    WorkerSettings,
    collecting_errors,
    names_read,
)
from pipeline.spelling import closest
from pipeline.watchlist import inspect_watchlist

__all__ = ["CheckReport", "check_configuration", "check_model"]

# Variables Vigie reads outside the settings classes (a CLI option's default).
_OTHER_NAMES = frozenset({"VIGIE_DEMO_WEBHOOK_SECRET"})


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was looked at, for the summary

    @property
    def ok(self) -> bool:
        return not self.errors


def _other_settings() -> list[Callable[[], object]]:
    """Every other settings class's `from_env`, so that the check reads them all."""
    from pipeline.detect_settings import DetectionSettings
    from pipeline.kafka_local import LocalKafka
    from pipeline.metrics import MetricsSettings
    from pipeline.producer import ProducerSettings
    from pipeline.sources.bluesky import BlueskySettings
    from pipeline.sources.mastodon import MastodonSettings
    from pipeline.sources.push import PushSettings
    from pipeline.sources.reddit import RedditSettings
    from pipeline.sources.rss import RssSettings
    from pipeline.sources.runner import RunnerSettings
    from pipeline.sources.twitter import XSettings

    return [
        KafkaSettings.from_env, ProducerSettings.from_env, MetricsSettings.from_env,
        LocalKafka.from_env, lambda: DetectionSettings.from_env().to_config(),
        RunnerSettings.from_env, BlueskySettings.from_env, MastodonSettings.from_env,
        PushSettings.from_env, RedditSettings.from_env, RssSettings.from_env, XSettings.from_env,
    ]


def check_model(model: str, model_dir: Path) -> list[str]:
    """Problems with the sentiment model the score agent would load (none loaded here)."""
    if model in ("", "default", "vigie-e5-small"):
        from models.sentiment.serving.built_model import built_model, model_folder

        if built_model(model_dir) is None:
            return [f"VIGIE_MODEL_DIR: the default sentiment model is not built (or is out of "
                    f"date) in {model_folder(model_dir)}: run `vigie model build`"]
        return []
    folder = Path(model)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            return [f"VIGIE_MODEL: {folder} has no config.json: not a Hugging Face model folder"]
        weights = [*folder.glob("*.safetensors"), *folder.glob("*.bin"), *folder.glob("*.onnx")]
        if not weights:
            return [f"VIGIE_MODEL: {folder} holds no weights (*.safetensors, *.bin, *.onnx)"]
        return []
    if "/" in model and not model.startswith((".", "/")) and model.count("/") == 1:
        return []  # a model id, looked up in the local Hugging Face cache only (offline)
    return [f"VIGIE_MODEL: {model} is not a folder"]


def check_configuration(env: Mapping[str, str] | None = None) -> CheckReport:
    """Check every setting, the watchlist, its receivers and the model; send nothing."""
    from pipeline.notify.config import check_receivers
    from pipeline.notify.settings import AlertSettings
    from pipeline.sentiment_settings import SentimentSettings

    env = os.environ if env is None else env
    report = CheckReport()
    with collecting_errors() as setting_errors:
        # Bad values are collected and replaced by defaults, so these always load.
        worker = WorkerSettings.from_env()
        alert = AlertSettings.from_env()
        try:
            sentiment = SentimentSettings.from_env()
        except SettingError as exc:  # VIGIE_MODEL_LABELS, checked as a whole
            setting_errors.append(exc)
            sentiment = SentimentSettings()
        for load in _other_settings():
            try:
                load()
            except (SettingError, ValueError) as exc:  # a check beyond one variable
                setting_errors.append(SettingError(str(exc)))
    report.errors += [str(error) for error in setting_errors]
    report.checked.append(f"{len(names_read())} settings")

    known = names_read() | _OTHER_NAMES
    for name in sorted(env):
        if not name.startswith("VIGIE_"):
            continue
        base = name.removesuffix("_FILE")
        if name in known or base in known:
            continue
        meant = closest(base, known)
        if meant:
            report.errors.append(f"{name}: not a Vigie setting, did you mean {meant}?")
        else:
            report.warnings.append(f"{name}: not a Vigie setting (ignored)")

    watchlist, problems = inspect_watchlist(worker.watchlist)
    report.errors += [str(problem) for problem in problems]
    if watchlist is not None:
        receivers, receiver_problems = check_receivers(watchlist.receivers, alert, env)
        report.errors += [str(problem) for problem in receiver_problems]
        report.checked.append(f"watchlist {worker.watchlist}: {len(watchlist.brands)} brands, "
                              f"{len(watchlist.receivers)} receivers")
        unused = sorted(set(watchlist.receivers) - {
            name for brand in watchlist.brands.values() for owner in brand.owners
            for name in owner.receivers})
        report.warnings += [f"{worker.watchlist}:{watchlist.receivers[name].line}: receivers."
                            f"{name}: no owner uses this receiver" for name in unused]
        del receivers  # built to check them; nothing is sent
    if "score" in worker.agents:
        report.errors += check_model(sentiment.model, sentiment.model_dir)
        report.checked.append("sentiment model")
    return report
