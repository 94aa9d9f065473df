"""Reading labelled text files and scoring predictions (accuracy, macro recall, macro F1).

Files follow `shared/data/sentiment/`: one text per line, the label (0 negative, 1 neutral,
2 positive) on the same line of the labels file; a final newline is optional.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from models.sentiment.serving.head import LABELS


class DataFileError(ValueError):
    """A texts/labels file cannot be used (unreadable, bad label, line counts differ)."""


def _lines(path: Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def read_texts(path: Path) -> list[str]:
    return _lines(path)


def read_labels(path: Path) -> list[int]:
    labels = []
    for number, line in enumerate(_lines(path), start=1):
        value = line.strip()
        if value not in {"0", "1", "2"}:
            raise DataFileError(f"{path}:{number}: expected 0, 1 or 2, got {value!r}")
        labels.append(int(value))
    return labels


def read_labelled(texts_path: Path, labels_path: Path) -> tuple[list[str], list[int]]:
    texts, labels = read_texts(texts_path), read_labels(labels_path)
    if len(texts) != len(labels):
        raise DataFileError(
            f"{texts_path} has {len(texts)} lines but {labels_path} has {len(labels)}"
        )
    return texts, labels


@dataclass(frozen=True)
class Scores:
    n: int
    accuracy: float
    macro_recall: float
    macro_f1: float
    recall: dict[str, float]
    f1: dict[str, float]

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_recall": round(self.macro_recall, 4),
            "macro_f1": round(self.macro_f1, 4),
            "recall": {k: round(v, 4) for k, v in self.recall.items()},
            "f1": {k: round(v, 4) for k, v in self.f1.items()},
        }


def score(gold: list[int], predicted: list[int]) -> Scores:
    """Macro averages over the three classes; a class absent from `gold` counts recall 0
    and F1 0 (as scikit-learn does with zero_division=0), so a metric is never undefined."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    if not gold:
        raise ValueError("nothing to score: no labelled texts")
    recall, f1 = {}, {}
    for index, name in enumerate(LABELS):
        true_pos = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p == index)
        actual = sum(1 for g in gold if g == index)
        guessed = sum(1 for p in predicted if p == index)
        rec = true_pos / actual if actual else 0.0
        prec = true_pos / guessed if guessed else 0.0
        recall[name] = rec
        f1[name] = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    correct = sum(1 for g, p in zip(gold, predicted, strict=True) if g == p)
    return Scores(
        n=len(gold),
        accuracy=correct / len(gold),
        macro_recall=sum(recall.values()) / len(LABELS),
        macro_f1=sum(f1.values()) / len(LABELS),
        recall=recall,
        f1=f1,
    )
