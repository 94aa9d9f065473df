"""How an incident is put into words: numbers, ratios to normal, the one-line summary.

The detector writes the `summary` of each incident event with these functions, and the
alert stage (pipeline/notify/render.py) falls back on the same ones for an event that
carries none, so a reader sees the same sentence whichever side wrote it. It lives in
`models/` because `models/` may import nothing of the pipeline, while the pipeline may
import `models/` (pipeline/records.py re-exports it).
"""

from __future__ import annotations

__all__ = ["calm_summary", "human_number", "ratio_text", "wave_summary"]


def human_number(value: float) -> str:
    """A count as a reader takes it in at a glance: at most one decimal and a suffix.

    >>> [human_number(n) for n in (312, 14_500, 45_300, 2_100_000, 3_000_000_000)]
    ['312', '14.5k', '45.3k', '2.1M', '3B']
    """
    number = float(value)
    for threshold, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= threshold:
            scaled = f"{number / threshold:.1f}".rstrip("0").rstrip(".")
            return f"{scaled}{suffix}"
    return f"{number:.0f}" if number == int(number) else f"{number:.1f}"


def ratio_text(observed: float, expected: float) -> str:
    """How far `observed` is above what was expected, in words.

    >>> ratio_text(312, 22), ratio_text(30, 20), ratio_text(5, 0)
    ('14x normal', '1.5x normal', 'normally about none')
    """
    if expected < 0.05:
        return "normally about none"
    ratio = observed / expected
    return f"{ratio:.0f}x normal" if ratio >= 10 else f"{ratio:.1f}x normal"


def wave_summary(
    negative: float, window_minutes: int, expected_negative: float, reach: float | None
) -> str:
    """The one sentence of an opened or updated incident (`reach` None: not known).

    >>> wave_summary(312, 10, 22, 2_100_000)
    '312 negative posts in 10 min, 14x normal; reach 2.1M'
    """
    sentence = (
        f"{negative} negative posts in {window_minutes} min, "
        f"{ratio_text(negative, expected_negative)}"
    )
    return sentence if reach is None else f"{sentence}; reach {human_number(reach)}"


def calm_summary(
    kind: str, negative: float, window_minutes: int, expected_negative: float, peak: float
) -> str:
    """The one sentence of an incident that has calmed down: `kind` is "resolved" or
    "subsided" (still open, but the wave has left the evidence window).

    >>> calm_summary("resolved", 3, 10, 2, 312)
    'Resolved: 3 negative posts in the last 10 min (1.5x normal); peak was 312'
    >>> calm_summary("subsided", 4, 10, 5.7, 404)
    'Subsided: 4 negative posts in the last 10 min (0.7x normal); peak was 404'
    """
    return (
        f"{kind.capitalize()}: {negative} negative posts in the last {window_minutes} min "
        f"({ratio_text(negative, expected_negative)}); peak was {peak}"
    )
