"""An online, robust expectation of a count series, and how surprising each value is.

`VolumeDetector` follows River's convention: `score_one(t, x)` says how surprising the
count `x` of the interval starting at `t` is, using only what was learnt before;
`learn_one(t, x)` then folds the count into the expectation. It never looks ahead.

The expectation is modelled in log space, `log(count + c) ~ level + daily[hour] + weekly[day]`:
- `level` is an exponentially weighted mean that follows slow trends (half-life in hours);
- `daily` (24 hourly offsets) and `weekly` (7 day offsets) learn the rhythm of a brand;
- the spread is an exponentially weighted mean of squared residuals, floored by the Poisson
  noise of small counts; with the offset `c`, 0 -> 3 posts is no surprise, 3 -> 300 is.
Every update uses the residual clipped at `huber_k` spreads (a Huber step): a spike moves
the expectation by at most a few spreads times a small rate, so the expectation is not
dragged up by the very wave it reports. Before any data the spread starts wide (a prior
worth `prior_weight` intervals), which keeps a brand-new series quiet during warm-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

__all__ = ["VolumeDetector", "VolumeParams", "VolumeScore", "normal_cdf"]


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _rate(interval_seconds: float, half_life_seconds: float) -> float:
    """Per-interval EWMA weight giving the requested half-life in wall-clock time."""
    if half_life_seconds <= 0:
        return 1.0
    return 1.0 - 0.5 ** (interval_seconds / half_life_seconds)


@dataclass(frozen=True)
class VolumeParams:
    """How fast the expectation adapts and how wide it starts; see the module docstring."""

    level_half_life_hours: float = 24.0
    daily_half_life_days: float = 1.0
    weekly_half_life_days: float = 14.0
    scale_half_life_hours: float = 192.0
    huber_k: float = 2.0
    initial_spread: float = 1.0  # log-space spread assumed before any data (about x2.7)
    prior_weight: float = 24.0  # intervals' worth of belief in that initial spread
    spread_floor: float = 0.05  # never trust the expectation to better than ~5%
    count_offset: float = 3.0  # c in log(count + c): damps the noise of small counts


@dataclass(frozen=True)
class VolumeScore:
    """How one interval compares with what was expected of it."""

    observed: float
    expected: float  # the expected count (median of the log-space model)
    lower: float  # a band of expected +/- 3 spreads, back in counts
    upper: float
    z: float  # standard deviations above expectation, in log space
    score: float  # Phi(z): probability that a normal interval would be lower

    def as_dict(self) -> dict[str, float]:
        return {
            "observed": self.observed,
            "expected": self.expected,
            "lower": self.lower,
            "upper": self.upper,
            "z": self.z,
            "score": self.score,
        }


class VolumeDetector:
    """Online expectation and surprise of one count series (one value per interval).

    >>> from datetime import UTC, datetime, timedelta
    >>> detector = VolumeDetector(interval_seconds=3600)
    >>> start = datetime(2026, 11, 2, tzinfo=UTC)
    >>> for hour in range(48):  # two quiet days: 20 to 24 posts an hour
    ...     detector.learn_one(start + timedelta(hours=hour), 20 + hour % 5)
    >>> score = detector.score_one(start + timedelta(hours=48), 200)
    >>> round(score.expected), score.z > 3
    (23, True)
    """

    def __init__(self, interval_seconds: float, params: VolumeParams | None = None) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive")
        self.interval_seconds = float(interval_seconds)
        self.params = params or VolumeParams()
        self.level: float | None = None
        self.daily = [0.0] * 24
        self.weekly = [0.0] * 7
        self.sq_spread = self.params.initial_spread**2
        self.seen = 0
        self._set_rates()

    def _set_rates(self) -> None:
        p, dt = self.params, self.interval_seconds
        self._level_rate = _rate(dt, p.level_half_life_hours * 3600)
        # A daily offset is only updated during its own hour: its rate is per visit.
        visits_per_day = max(1.0, 3600.0 / dt)
        self._daily_rate = _rate(1.0, p.daily_half_life_days * visits_per_day)
        self._weekly_rate = _rate(1.0, p.weekly_half_life_days * 86400.0 / dt)
        self._scale_rate = _rate(dt, p.scale_half_life_hours * 3600)

    # -- the model ---------------------------------------------------------------------
    def _log_mean(self, t: datetime) -> float:
        level = 0.0 if self.level is None else self.level
        return level + self.daily[t.hour] + self.weekly[t.weekday()]

    def _to_log(self, x: float) -> float:
        return math.log(max(0.0, float(x)) + self.params.count_offset)

    def _to_count(self, y: float) -> float:
        return max(0.0, math.exp(y) - self.params.count_offset)

    def _spread(self, log_mean: float) -> float:
        # Poisson noise of a count with mean m, seen through log(x + c): sd ~ sqrt(m) / (m + c),
        # a floor for quiet series whose learnt spread could otherwise shrink to nothing.
        offset = self.params.count_offset
        mean = self._to_count(log_mean)
        poisson_sd = math.sqrt(mean + 1.0) / (mean + offset)
        learnt = math.sqrt(self.sq_spread)
        return max(self.params.spread_floor, learnt, poisson_sd)

    def score_one(self, t: datetime, x: float) -> VolumeScore:
        """Surprise of count `x` for the interval starting at `t` (does not learn it)."""
        x = max(0.0, float(x))
        log_mean = self._log_mean(t)
        spread = self._spread(log_mean)
        z = (self._to_log(x) - log_mean) / spread
        return VolumeScore(
            observed=x,
            expected=self._to_count(log_mean),
            lower=self._to_count(log_mean - 3 * spread),
            upper=self._to_count(log_mean + 3 * spread),
            z=z,
            score=normal_cdf(z),
        )

    def learn_one(self, t: datetime, x: float) -> None:
        """Fold count `x` of the interval starting at `t` into the expectation."""
        y = self._to_log(x)
        if self.level is None:
            self.level = y
            self.seen = 1
            return
        log_mean = self._log_mean(t)
        learnt_spread = math.sqrt(self.sq_spread)
        limit = self.params.huber_k * max(learnt_spread, self.params.spread_floor)
        residual = y - log_mean
        step = min(limit, max(-limit, residual))
        # Early on, learn fast (a plain mean), then settle to the configured half-lives.
        warm = 1.0 / (self.seen + 1.0)
        self.level += max(self._level_rate, warm) * step
        self.daily[t.hour] += self._daily_rate * step
        self.weekly[t.weekday()] += self._weekly_rate * step
        self._recentre()
        scale_rate = max(self._scale_rate, 1.0 / (self.seen + 1.0 + self.params.prior_weight))
        self.sq_spread += scale_rate * (step * step - self.sq_spread)
        self.seen += 1

    def _recentre(self) -> None:
        # Offsets are relative to the level: keep their mean at zero, fold it into the level.
        daily_mean = sum(self.daily) / 24.0
        weekly_mean = sum(self.weekly) / 7.0
        if daily_mean or weekly_mean:
            self.daily = [d - daily_mean for d in self.daily]
            self.weekly = [w - weekly_mean for w in self.weekly]
            assert self.level is not None
            self.level += daily_mean + weekly_mean

    # -- state -------------------------------------------------------------------------
    def to_state(self) -> dict[str, object]:
        return {
            "level": self.level,
            "daily": list(self.daily),
            "weekly": list(self.weekly),
            "sq_spread": self.sq_spread,
            "seen": self.seen,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, object], interval_seconds: float, params: VolumeParams | None = None
    ) -> VolumeDetector:
        detector = cls(interval_seconds, params)
        level = state["level"]
        detector.level = None if level is None else float(level)  # type: ignore[arg-type]
        detector.daily = [float(v) for v in state["daily"]]  # type: ignore[union-attr]
        detector.weekly = [float(v) for v in state["weekly"]]  # type: ignore[union-attr]
        detector.sq_spread = float(state["sq_spread"])  # type: ignore[arg-type]
        detector.seen = int(state["seen"])  # type: ignore[call-overload]
        if len(detector.daily) != 24 or len(detector.weekly) != 7:
            raise ValueError("volume detector state: daily needs 24 values, weekly 7")
        return detector
