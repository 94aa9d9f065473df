"""Settings of the sentiment model (`VIGIE_MODEL*`), used by the CLI and the score agent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.settings import (
    SettingError,
    env_bool,
    env_choice,
    env_int,
    env_str,
    project_root,
)

RUNTIMES = ("onnx-int8", "onnx", "torch")  # same as models.sentiment.RUNTIMES
# Posts the score agent hands the model at once, in model batches: the classifier sorts
# each call by token count, and 32 batches' worth pad little (2,048 unique posts: 860
# posts/s in calls of 512, 810 in calls of 256, 760 in calls of 128; models/sentiment/
# RESULTS.md). Under light load the agent's deadline sends smaller calls sooner.
BATCHES_PER_CALL = 32


@dataclass(frozen=True)
class SentimentSettings:
    """`model` empty means Vigie's built-in default (vigie-e5-small)."""

    model: str = ""
    runtime: str = "onnx-int8"
    threads: int = 2
    batch_size: int = 16
    cache_size: int = 10_000
    labels: str = ""  # e.g. "LABEL_0=negative,LABEL_1=neutral,LABEL_2=positive"
    model_dir: Path = Path(".state/models")
    # Mentions carry the post's sentence vector (default model, ONNX runtimes), with which
    # the detector joins storylines told in different languages.
    sentence_vectors: bool = True

    @classmethod
    def from_env(cls) -> SentimentSettings:
        settings = cls(
            model=env_str("VIGIE_MODEL", cls.model),
            runtime=env_choice("VIGIE_MODEL_RUNTIME", cls.runtime, RUNTIMES),
            threads=env_int("VIGIE_MODEL_THREADS", cls.threads, minimum=1),
            batch_size=env_int("VIGIE_MODEL_BATCH_SIZE", cls.batch_size, minimum=1),
            cache_size=env_int("VIGIE_MODEL_CACHE_SIZE", cls.cache_size, minimum=0),
            labels=env_str("VIGIE_MODEL_LABELS", cls.labels),
            model_dir=Path(env_str("VIGIE_MODEL_DIR", str(project_root() / cls.model_dir))),
            sentence_vectors=env_bool("VIGIE_MODEL_SENTENCE_VECTORS", cls.sentence_vectors),
        )
        settings.label_map()  # fail at start-up, not on the first post
        return settings

    @property
    def posts_per_call(self) -> int:
        """How many posts the score agent scores in one classifier call (at most)."""
        return self.batch_size * BATCHES_PER_CALL

    def label_map(self) -> dict[str, str] | None:
        from models.sentiment.serving.backends import parse_label_map

        try:
            return parse_label_map(self.labels)
        except ValueError as exc:
            raise SettingError(f"VIGIE_MODEL_LABELS: {exc}") from None

    def load_classifier(self):  # -> models.sentiment.SentimentClassifier
        from models.sentiment import ClassifierOptions, load_classifier

        return load_classifier(ClassifierOptions(
            model=self.model or None,
            runtime=self.runtime,
            threads=self.threads,
            batch_size=self.batch_size,
            cache_size=self.cache_size,
            label_map=self.label_map(),
            cache_dir=self.model_dir,
            sentence_vectors=self.sentence_vectors,
        ))
