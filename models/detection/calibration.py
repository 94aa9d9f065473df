"""How rare a surprise is for this series: an online, decaying tail of past surprises.

A brand whose mentions are always bursty produces large z-scores every day; a quiet
brand almost never does. Rather than one fixed z threshold for all, `TailCalibrator`
keeps a decaying histogram of the z-scores the series has produced recently and turns a
new z into a tail probability: the share of recent intervals that were at least as
surprising. A Gaussian prior, worth `prior_weight` intervals, keeps the estimate sane in
warm-up and beyond the largest z seen. `rarity = -log10(p)`: 3 means "1 interval in 1000".
"""

from __future__ import annotations

import math

__all__ = ["TailCalibrator"]

_BIN_WIDTH = 0.25
_MAX_Z = 40.0
_BINS = int(_MAX_Z / _BIN_WIDTH)


def _gaussian_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


class TailCalibrator:
    """How rare a surprise `z` has been lately: a decaying histogram, plus a Gaussian prior.

    >>> calibrator = TailCalibrator(half_life_intervals=1000, prior_weight=10)
    >>> for _ in range(100):
    ...     calibrator.learn(0.5)  # ordinary intervals
    >>> round(calibrator.rarity(0.2), 2), round(calibrator.rarity(4.0), 1)
    (0.02, 5.5)
    """

    def __init__(self, half_life_intervals: float, prior_weight: float) -> None:
        self.decay = 0.5 ** (1.0 / max(half_life_intervals, 1.0))
        self.prior_weight = prior_weight
        # Bin k holds z in [k * width, (k + 1) * width). Decaying every bin at every step
        # would be slow, so counts are kept in growing units: a new interval weighs `unit`,
        # and `unit` grows by 1/decay per step (everything is renormalised now and then).
        self.counts = [0.0] * _BINS
        self.total = 0.0  # every interval, including those with z < 0, in the same units
        self.unit = 1.0

    def tail(self, z: float) -> float:
        """Probability that a recent interval had a surprise >= z (prior included)."""
        if z <= 0:
            return 1.0
        k = min(_BINS, math.ceil(z / _BIN_WIDTH))  # bins entirely at or above z
        above = sum(self.counts[k:])
        # The bin holding z: count the part above z as if spread evenly.
        if 0 < k <= _BINS and k - 1 < _BINS:
            part = (k * _BIN_WIDTH - z) / _BIN_WIDTH
            above += self.counts[k - 1] * part
        prior = self.prior_weight * self.unit
        return (above + prior * _gaussian_tail(z)) / (self.total + prior)

    def rarity(self, z: float) -> float:
        return -math.log10(max(self.tail(z), 1e-300))

    def learn(self, z: float) -> None:
        self.unit /= self.decay
        if self.unit > 1e100:
            self._renormalise()
        self.total += self.unit
        if z > 0:
            self.counts[min(_BINS - 1, int(z / _BIN_WIDTH))] += self.unit

    def _renormalise(self) -> None:
        self.counts = [c / self.unit for c in self.counts]
        self.total /= self.unit
        self.unit = 1.0

    def to_state(self) -> dict[str, object]:
        # Sparse: most bins are empty.
        self._renormalise()
        return {
            "total": self.total,
            "counts": {str(k): c for k, c in enumerate(self.counts) if c > 1e-9},
        }

    def load_state(self, state: dict[str, object]) -> None:
        self.total = float(state["total"])  # type: ignore[arg-type]
        self.counts = [0.0] * _BINS
        self.unit = 1.0
        for key, value in dict(state["counts"]).items():  # type: ignore[call-overload]
            self.counts[int(key)] = float(value)
