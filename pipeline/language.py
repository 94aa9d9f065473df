"""Language detection for posts whose source did not say their language."""

from __future__ import annotations

from functools import lru_cache

from langdetect import DetectorFactory, LangDetectException, detect_langs

# langdetect is random by default; a fixed seed makes the same text get the same answer.
DetectorFactory.seed = 0
# Below this probability a short or mixed text is marked "und" (undetermined), not guessed.
MIN_PROBABILITY = 0.6


@lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language, or None when unsure."""
    try:
        candidates = detect_langs(text)
    except LangDetectException:
        return None
    if not candidates or candidates[0].prob < MIN_PROBABILITY:
        return None
    return candidates[0].lang.split("-")[0]
