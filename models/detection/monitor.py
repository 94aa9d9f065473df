"""Per-brand monitor: mentions in, interval by interval; incident events out.

`BrandMonitor` counts the mentions of the open interval (volume, negative volume, reach of
the negative posts, the top negative posts by reach, their terms, their storylines), and
when the interval is closed it judges the evidence window (the last `window_minutes`) with
a `SpikeDetector` on negative volume, plus plain expectations of mention volume and
negative reach. It keeps one incident at a time through `IncidentLifecycle` and returns
the incident events (docs/records.md, "Incident event") that this interval produced:

- `opened` when the negative volume of the window triggers (see `SpikeDetector`);
- `updated` when the severity rises (`escalated: true`), when the window's negative volume
  reaches 1.5x what was last reported while the wave is active, or when it surges again
  after it had subsided (`status` back to `active`);
- `subsided` once the evidence window has been calm throughout (the resolution's calm
  test) while the quiet period still holds the incident open: the wave is over for now,
  nobody need be reminded of it; it carries the evidence last reported, when the calm
  began (`subsided_at`) and the peak;
- `resolved` once the quiet period (`quiet_minutes` from the opening) is over and the
  evidence window has been calm throughout; it carries the evidence (top posts, terms)
  last reported and says what the peak was.

Every event says where the incident stands after it (`status`: `active`, `subsided` or
`resolved`) and its peak so far (`peak_negative`, `peak_at`).

`pages_someone(event)` says which of these events page a person (an opening or an
escalation; the alert service may fold an escalation into the opening message during its
group wait). The benchmarks count exactly those events as detections (series.py).

Early firing: `judge_open` judges the open interval on the mentions counted so far, so a
steep wave is reported while its first interval is still filling. It uses the very test
of `close_interval`, on the same expectation: counts only grow within an interval and the
test is monotone in them, so it fires only in an interval whose close would have opened
the same incident. It adds no false alert; it only fires sooner.

Mentions of a later interval, which arrive before the detector's clock reaches it
(a backfill read faster on one partition than on another), are counted apart with
`hold_mention` and added with `open_held` when their interval opens.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from models.detection.config import DetectorConfig
from models.detection.lifecycle import SEVERITIES, IncidentLifecycle
from models.detection.spike import SpikeDetector, Surprise
from models.detection.storylines import (
    StorylineSet,
    join_languages,
    merge_storylines,
    summarise,
    unpack_int8,
)
from models.detection.terms import TermBaseline, extract_terms
from models.detection.volume import VolumeDetector, VolumeScore
from models.detection.wording import calm_summary, wave_summary

__all__ = ["BrandMonitor", "HeldTally", "SCHEMA_VERSION", "pages_someone"]

# 2: incident events carry `storylines`, trend points `expected`; 3: `subsided` events,
# `status`, `subsided_at`, `peak_negative`, `peak_at` (docs/records.md)
SCHEMA_VERSION = 3
# 2: the window may be named by its intervals' starts (`to_state(window_by_start=True)`);
# version 1 states (the window included) still load.
STATE_VERSION = 2
READABLE_STATE_VERSIONS = (1, 2)
LABELS = ("negative", "neutral", "positive")
GROWTH_FOR_UPDATE = 1.5  # an open incident is re-announced when its negative volume grows x1.5
MAX_TEXT = 500  # characters of a post's text carried in an incident
TOP_STORYLINES = 5  # storylines carried in an incident event


def pages_someone(event: dict[str, Any]) -> bool:
    """True for the incident events that page a person: an opening, an escalation.

    >>> pages_someone({"event": "opened", "escalated": False})
    True
    >>> pages_someone({"event": "updated", "escalated": False})  # threaded, not paged
    False
    """
    return event.get("event") == "opened" or (
        event.get("event") == "updated" and bool(event.get("escalated"))
    )


def _status(kind: str, subsided: bool) -> str:
    """Where the incident stands after an event of this kind (the event's `status`)."""
    if kind == "resolved":
        return "resolved"
    return "subsided" if subsided else "active"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat()


@dataclass
class _Interval:
    """What one interval's mentions add up to."""

    start: str = ""
    mentions: int = 0
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    reach_negative: int = 0
    top: list[dict[str, Any]] = field(default_factory=list)  # negative posts, by reach
    negative_terms: Counter[str] = field(default_factory=Counter)
    all_terms: Counter[str] = field(default_factory=Counter)
    storylines: StorylineSet = field(default_factory=StorylineSet)

    def to_state(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "mentions": self.mentions,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "reach_negative": self.reach_negative,
            "top": list(self.top),  # a copy, as for the storylines (their to_state says why)
            "negative_terms": dict(self.negative_terms),
            "all_terms": dict(self.all_terms),
            "storylines": self.storylines.to_state(),
        }

    def is_empty(self) -> bool:
        return self.mentions == 0 and self.reach_negative == 0

    def merge(self, other: _Interval, top_posts: int) -> None:
        """Add another tally of the same interval to this one."""
        for name in ("mentions", "negative", "neutral", "positive", "reach_negative"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.top = sorted([*self.top, *other.top], key=lambda post: -post["followers"])
        del self.top[top_posts:]
        self.negative_terms.update(other.negative_terms)
        self.all_terms.update(other.all_terms)
        self.storylines = merge_storylines([self.storylines, other.storylines])

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Interval:
        return cls(
            start=state["start"],
            mentions=_count(state["mentions"]),
            negative=_count(state["negative"]),
            neutral=_count(state["neutral"]),
            positive=_count(state["positive"]),
            reach_negative=_count(state["reach_negative"]),
            top=list(state["top"]),
            negative_terms=Counter(state["negative_terms"]),
            all_terms=Counter(state["all_terms"]),
            # States written before storylines existed have none: an empty set.
            storylines=StorylineSet.from_state(state.get("storylines")),
        )


class HeldTally:
    """The mentions of an interval that has not opened yet, counted apart by
    `BrandMonitor.hold_mention` until `open_held` adds them to it.

    Kept as it is while mentions come in, and turned into a JSON-serialisable state only
    to be stored: a tally read back and written again for every mention costs in
    proportion to what it holds (its storylines above all)."""

    def __init__(self, interval: _Interval | None = None) -> None:
        self.interval = interval if interval is not None else _Interval()

    def to_state(self) -> dict[str, Any]:
        return self.interval.to_state()

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HeldTally:
        return cls(_Interval.from_state(state))


def _count(value: Any) -> int | float:
    """A count from the state: whole numbers stay ints, benchmark volumes may be fractional."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _post_evidence(mention: dict[str, Any], label: str, reach: int) -> dict[str, Any]:
    author = mention.get("author") or {}
    text = str(mention.get("text") or "")
    return {
        "post_key": str(mention.get("post_key") or ""),
        "url": mention.get("url"),
        "author_handle": author.get("handle"),
        "author_name": author.get("display_name"),
        "followers": int(author.get("followers") or reach),
        "text": text[:MAX_TEXT],
        "sentiment": label,
        "created_at": mention.get("created_at"),
    }


class BrandMonitor:
    """One brand's detector state; see the package docstring for the calling convention.

    >>> from datetime import UTC, datetime, timedelta
    >>> monitor = BrandMonitor("acme", "ACME", DetectorConfig())  # one-minute intervals
    >>> start, minute = datetime(2026, 11, 2, tzinfo=UTC), timedelta(minutes=1)
    >>> events = []
    >>> for i in range(2 * 24 * 60 + 1):  # two calm days, then 60 negative posts a minute
    ...     monitor.add_counts(negative=60 if i >= 2 * 24 * 60 else 2 + i % 3, neutral=10)
    ...     events += monitor.close_interval(start + i * minute, start + (i + 1) * minute)
    >>> [(event["event"], event["summary"]) for event in events]
    [('opened', '87 negative posts in 10 min, 2.7x normal; reach 0')]
    """

    def __init__(self, brand: str, brand_name: str, config: DetectorConfig) -> None:
        self.brand = brand
        self.brand_name = brand_name
        self.config = config
        self.negative = SpikeDetector(config)
        self.mentions = VolumeDetector(config.interval_seconds, config.volume)
        self.reach = VolumeDetector(config.interval_seconds, config.volume)
        self.lifecycle = IncidentLifecycle(
            quiet_intervals=config.quiet_intervals, calm_intervals=config.window_intervals
        )
        self.incident: dict[str, Any] | None = None
        self.window: list[_Interval] = []  # the evidence window, oldest first
        self.trend: list[dict[str, Any]] = []  # light history for the `trend` field
        self.terms = TermBaseline()
        self.current = _Interval()
        # The negative-volume surprise of the last closed interval (for plots and series
        # output; not part of the state).
        self.last_surprise: Surprise | None = None
        self._ignored_terms = {brand.lower(), brand_name.lower()}
        # Storylines of the intervals that left the evidence window while an incident is
        # open: with the window's own, they make the incident's storylines.
        self.wave_storylines = StorylineSet()
        self.storylines_enabled = True  # off only to measure what storylines cost

    # -- input -------------------------------------------------------------------------
    def add_mention(self, mention: dict[str, Any]) -> None:
        """Count one Mention record (docs/records.md) in the currently open interval.

        Raises ValueError when the record lacks what the detector needs; nothing is counted.
        """
        self._count(self.current, mention)

    def hold_mention(self, held: HeldTally | None, mention: dict[str, Any]) -> HeldTally:
        """Count a mention of a later interval apart: `held` is that interval's tally so far
        (a previous return value, which this adds to, or None); returns the tally.

        Raises ValueError as `add_mention` does; nothing is counted then.
        """
        tally = held if held is not None else HeldTally()
        self._count(tally.interval, mention)
        return tally

    def open_held(self, held: HeldTally) -> None:
        """Add a tally made by `hold_mention` to the open interval (now that it is open);
        the tally is not to be used again."""
        if self.current.is_empty():
            self.current = held.interval  # the usual case: exactly as if counted here
        else:
            self.current.merge(held.interval, self.config.top_posts)

    def _count(self, interval: _Interval, mention: dict[str, Any]) -> None:
        if not isinstance(mention, dict):
            raise ValueError("mention must be a JSON object")
        if mention.get("brand", self.brand) != self.brand:
            raise ValueError(f"mention is for brand {mention.get('brand')!r}, not {self.brand!r}")
        sentiment = mention.get("sentiment")
        label = sentiment.get("label") if isinstance(sentiment, dict) else None
        if label not in LABELS:
            raise ValueError("mention.sentiment.label must be negative, neutral or positive")
        reach = mention.get("reach", 0)
        if isinstance(reach, bool) or not isinstance(reach, int) or reach < 0:
            raise ValueError("mention.reach must be an integer >= 0")
        text = mention.get("text", "")
        if not isinstance(text, str):
            raise ValueError("mention.text must be a string")
        matched = mention.get("matched") or []
        ignored = [*self._ignored_terms, *map(str, matched)]
        terms = extract_terms(text, ignored)
        vector = None
        if self.storylines_enabled and mention.get("vector") is not None:
            try:
                vector = unpack_int8(mention["vector"])
            except ValueError as exc:
                raise ValueError(f"mention.vector: {exc}") from None

        interval.mentions += 1
        setattr(interval, label, getattr(interval, label) + 1)
        interval.all_terms.update(terms)
        evidence = _post_evidence(mention, label, reach)
        if label == "negative":
            interval.reach_negative += reach
            interval.negative_terms.update(terms)
            interval.top.append(evidence)
            interval.top.sort(key=lambda post: -post["followers"])
            del interval.top[self.config.top_posts :]
        if self.storylines_enabled:
            interval.storylines.add(evidence, label == "negative", reach, ignored, vector,
                                    str(mention.get("language") or ""))

    def add_counts(
        self,
        negative: float = 0,
        neutral: float = 0,
        positive: float = 0,
        reach_negative: float = 0,
    ) -> None:
        """Count posts known only by number (replays, synthetic scenarios, benchmark series
        whose values need not be whole): no evidence."""
        values = (negative, neutral, positive, reach_negative)
        if any(
            isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < math.inf
            for v in values
        ):
            raise ValueError("counts must be finite numbers >= 0")
        interval = self.current
        interval.negative += negative
        interval.neutral += neutral
        interval.positive += positive
        interval.mentions += negative + neutral + positive
        interval.reach_negative += reach_negative

    # -- one interval ------------------------------------------------------------------
    def close_interval(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Close the interval [start, end) (zero mentions allowed); return incident events."""
        start, end = _utc(start), _utc(end)
        if end <= start:
            raise ValueError("interval end must be after its start")
        config = self.config
        closed, self.current = self.current, _Interval()
        closed.start = _iso(start)
        self._push(closed, end)

        totals = self._window_totals()
        negative = self.negative.score_one(start, totals["negative"])
        mentions = self.mentions.score_one(start, totals["mentions"])
        reach = self.reach.score_one(start, totals["reach_negative"])
        self.last_surprise = negative
        severity = self._severity(negative, mentions, reach, totals)
        # A fresh surge inside an incident that had subsided is news even when it is
        # smaller than the peak: it makes the incident active again (an update). (Not
        # `trigger`: the first surge has made such values less rare for the brand; and
        # enough posts, so that a few posts on a quiet brand do not undo `subsided`.)
        surging = negative.active and totals["negative"] >= config.min_negative
        step = self.lifecycle.step(negative.trigger, negative.active, severity, surging)

        # What this interval's negative volume would normally be (the detector expects
        # the window's sum): the "expected" curve of the alert's chart.
        self.trend[-1]["expected_negative"] = round(
            negative.volume.expected / config.window_intervals, 2)
        self.negative.learn_one(start, totals["negative"], negative)
        self.mentions.learn_one(start, totals["mentions"])
        self.reach.learn_one(start, totals["reach_negative"])

        events: list[dict[str, Any]] = []
        if step.event == "opened":
            self._open_incident(start)
        incident = self.incident
        if incident is not None:
            if step.event == "opened" or totals["negative"] > incident["peak_negative"]:
                incident["peak_negative"], incident["peak_at"] = totals["negative"], _iso(end)
            grew = totals["negative"] >= GROWTH_FOR_UPDATE * max(
                1, incident["reported_negative"]
            )
            if step.resumed:
                incident["subsided_at"] = None
            if step.event == "subsided":
                # The window has been calm for `calm_intervals` intervals: calm since the
                # end of the first of them.
                incident["subsided_at"] = _iso(end - timedelta(
                    seconds=(self.lifecycle.calm_intervals - 1) * config.interval_seconds))
            if step.event == "opened" or step.escalated:
                events.append(self._event(step.event or "updated", step.escalated, end, totals,
                                          negative, mentions, reach))
            elif step.event in ("subsided", "resolved"):
                events.append(self._event(step.event, False, end, totals, negative, mentions,
                                          reach))
                if step.event == "resolved":
                    self.incident = None
                    self.wave_storylines = StorylineSet()
            elif step.resumed or (grew and not self.lifecycle.subsided):
                events.append(self._event("updated", False, end, totals, negative, mentions,
                                          reach))
        return events

    def judge_open(self, start: datetime, at: datetime) -> list[dict[str, Any]]:
        """Early firing: judge the open interval [start, start + interval) on the mentions
        counted so far; returns the `opened` event when it triggers, as of `at`.

        The evidence window is the one its close would judge (the closed intervals of the
        last `window_minutes`, and this one), scored against the same expectation with the
        same thresholds; nothing is learnt. Once open, the incident goes on at the close
        of the interval (updates, escalation, resolution) as if it had opened there.
        """
        if self.lifecycle.is_open:
            return []
        config = self.config
        start, at = _utc(start), _utc(at)
        end = start + timedelta(seconds=config.interval_seconds)
        horizon = _iso(end - timedelta(minutes=config.window_minutes))
        closed = [interval for interval in self.window if interval.start >= horizon]
        window = [*closed[len(closed) - (config.window_intervals - 1):], self.current] \
            if config.window_intervals > 1 else [self.current]
        totals = self._totals(window)
        negative = self.negative.score_one(start, totals["negative"])
        if not negative.trigger:
            return []
        mentions = self.mentions.score_one(start, totals["mentions"])
        reach = self.reach.score_one(start, totals["reach_negative"])
        self.lifecycle.open_early(self._severity(negative, mentions, reach, totals))
        moment = max(start, min(at, end))
        incident = self._open_incident(start)
        incident["peak_negative"], incident["peak_at"] = totals["negative"], _iso(moment)
        return [self._event("opened", False, moment, totals, negative, mentions, reach,
                            window)]

    def _open_incident(self, start: datetime) -> dict[str, Any]:
        stamp = "%Y%m%dT%H%MZ" if self.config.interval_seconds % 60 == 0 else "%Y%m%dT%H%M%SZ"
        self.incident = {
            "incident_id": f"{self.brand}-{start.strftime(stamp)}",
            "opened_at": _iso(start),
            "sequence": 0,
            "reported_negative": 0,
            "peak_negative": 0,
            "peak_at": None,
            "subsided_at": None,
            "top_posts": [],
            "surging_terms": [],
            "storylines": [],
        }
        return self.incident

    def _push(self, closed: _Interval, end: datetime) -> None:
        self.trend.append(
            {"start": closed.start, "mentions": closed.mentions, "negative": closed.negative}
        )
        del self.trend[: max(0, len(self.trend) - self.config.trend_intervals)]
        self.window.append(closed)
        # The window is the last `window_minutes` of time, whatever gaps there were; an
        # interval leaving it joins the term baseline (so a wave is compared with before).
        horizon = _iso(end - timedelta(minutes=self.config.window_minutes))
        decay = 0.5 ** (self.config.interval_seconds / 86400.0)
        while self.window and (
            self.window[0].start < horizon or len(self.window) > self.config.window_intervals
        ):
            leaving = self.window.pop(0)
            self.terms.learn(leaving.all_terms, leaving.mentions, decay)
            if self.lifecycle.is_open:
                self.wave_storylines = merge_storylines(
                    [self.wave_storylines, leaving.storylines])

    def _window_totals(self) -> dict[str, int]:
        return self._totals(self.window)

    @staticmethod
    def _totals(window: list[_Interval]) -> dict[str, int]:
        keys = ("mentions", "negative", "neutral", "positive", "reach_negative")
        return {key: sum(getattr(i, key) for i in window) for key in keys}

    def _severity(
        self,
        negative: Surprise,
        mentions: VolumeScore,
        reach: VolumeScore,
        totals: dict[str, int],
    ) -> int:
        """Surprise of the negative volume sets the level; share and reach move it."""
        config = self.config
        level = config.severity_level(negative.z)
        share = totals["negative"] / totals["mentions"] if totals["mentions"] else 0.0
        usual_share = negative.volume.expected / mentions.expected if mentions.expected else 0.0
        # Negativity that rose to an alarming share raises the level; a share no higher than
        # usual lowers it (the whole conversation grew, not its negativity). A brand whose
        # share is always alarming (or a count series, all "negative") gets neither.
        if share >= config.alarming_share and share > 1.2 * usual_share:
            level += 1
        elif share <= 1.2 * usual_share and share < config.alarming_share:
            level -= 1
        if totals["reach_negative"] >= config.critical_reach or reach.z >= config.threshold(
            "critical_score"
        ):
            level += 1
        return max(0, min(len(SEVERITIES) - 1, level))

    # -- events ------------------------------------------------------------------------
    def _event(
        self,
        kind: str,
        escalated: bool,
        end: datetime,
        totals: dict[str, int],
        negative: Surprise,
        mentions: VolumeScore,
        reach: VolumeScore,
        window: list[_Interval] | None = None,
    ) -> dict[str, Any]:
        window = self.window if window is None else window
        incident = self.incident
        assert incident is not None
        config = self.config
        incident["sequence"] += 1
        share = totals["negative"] / totals["mentions"] if totals["mentions"] else 0.0
        expected_negative = negative.volume.expected
        expected_share = (
            min(1.0, expected_negative / mentions.expected) if mentions.expected else 0.0
        )
        if kind in ("subsided", "resolved"):
            # The wave has left the window: show the evidence last reported.
            top_posts, surging = incident["top_posts"], incident["surging_terms"]
            storylines = incident.get("storylines", [])
            summary = calm_summary(kind, totals["negative"], config.window_minutes,
                                   expected_negative, incident["peak_negative"])
        else:
            top_posts = sorted(
                (post for interval in window for post in interval.top),
                key=lambda post: -post["followers"],
            )[: config.top_posts]
            wave_terms: Counter[str] = Counter()
            for interval in window:
                wave_terms.update(interval.negative_terms)
            surging = self.terms.surging(wave_terms, totals["negative"], config.top_terms)
            incident["top_posts"], incident["surging_terms"] = top_posts, surging
            # Words group each language's posts; sentence vectors then join the tellings
            # of one story in different languages.
            storylines = summarise(join_languages(merge_storylines(
                [self.wave_storylines, *(interval.storylines for interval in window)])),
                TOP_STORYLINES)
            incident["storylines"] = storylines
            incident["reported_negative"] = totals["negative"]
            summary = wave_summary(totals["negative"], config.window_minutes,
                                   expected_negative, totals["reach_negative"])
        return {
            "schema_version": SCHEMA_VERSION,
            "incident_id": incident["incident_id"],
            "brand": self.brand,
            "brand_name": self.brand_name,
            "event": kind,
            "sequence": incident["sequence"],
            "severity": SEVERITIES[self.lifecycle.severity],
            "escalated": escalated,
            "opened_at": incident["opened_at"],
            "updated_at": _iso(end),
            "resolved_at": _iso(end) if kind == "resolved" else None,
            "status": _status(kind, self.lifecycle.subsided),
            "subsided_at": incident.get("subsided_at"),
            "peak_negative": incident["peak_negative"],
            "peak_at": incident.get("peak_at"),
            "interval_seconds": config.interval_seconds,
            "summary": summary,
            "observed": {
                "mentions": totals["mentions"],
                "negative": totals["negative"],
                "negative_share": round(share, 3),
                "reach_negative": totals["reach_negative"],
            },
            "expected": {
                "mentions": round(mentions.expected, 1),
                "negative": round(expected_negative, 1),
                "negative_share": round(expected_share, 3),
                "reach_negative": round(reach.expected, 1),
            },
            "score": round(negative.score, 4),
            "window_minutes": config.window_minutes,
            "sentiment": {label: totals[label] for label in LABELS},
            "top_posts": [dict(post) for post in top_posts],
            "surging_terms": [dict(term) for term in surging],
            "storylines": [dict(storyline) for storyline in storylines],
            "trend": [dict(point) for point in self.trend],
        }

    # -- state -------------------------------------------------------------------------
    def to_state(self, window_by_start: bool = False) -> dict[str, Any]:
        """Everything needed to resume exactly, as JSON-serialisable values.

        `window_by_start`: the evidence window's intervals are named by their starts
        (`window_starts`) instead of included. A closed interval never changes, and the
        window is most of the state (its storylines and their sentence vectors), so a
        caller that saves the state often saves each closed interval once, apart
        (`interval_state`), and gives them back to `from_state`."""
        window: dict[str, Any] = (
            {"window_starts": self.window_starts()} if window_by_start
            else {"window": [interval.to_state() for interval in self.window]})
        return {
            "state_version": STATE_VERSION,
            "brand": self.brand,
            "brand_name": self.brand_name,
            "negative": self.negative.to_state(),
            "mentions": self.mentions.to_state(),
            "reach": self.reach.to_state(),
            "lifecycle": self.lifecycle.to_state(),
            "incident": None if self.incident is None else dict(self.incident),
            **window,
            "trend": [dict(point) for point in self.trend],
            "terms": self.terms.to_state(),
            "current": self.current.to_state(),
            "wave_storylines": self.wave_storylines.to_state(),
        }

    def window_starts(self) -> list[str]:
        """The starts of the evidence window's closed intervals, oldest first."""
        return [interval.start for interval in self.window]

    def interval_state(self, start: str) -> dict[str, Any]:
        """The state of the window's closed interval that starts at `start`."""
        for interval in self.window:
            if interval.start == start:
                return interval.to_state()
        raise KeyError(f"no interval starting at {start} in the window")

    @classmethod
    def from_state(cls, state: dict[str, Any], config: DetectorConfig,
                   intervals: Mapping[str, dict[str, Any]] | None = None) -> BrandMonitor:
        """Resume from `to_state()`; ValueError when the state is not one of ours.

        `intervals`: the window's interval states by start, for a state saved with
        `window_by_start`."""
        try:
            if state.get("state_version") not in READABLE_STATE_VERSIONS:
                raise ValueError(f"unsupported state_version {state.get('state_version')!r}")
            monitor = cls(str(state["brand"]), str(state["brand_name"]), config)
            monitor.negative = SpikeDetector.from_state(state["negative"], config)
            monitor.mentions = VolumeDetector.from_state(
                state["mentions"], config.interval_seconds, config.volume
            )
            monitor.reach = VolumeDetector.from_state(
                state["reach"], config.interval_seconds, config.volume
            )
            monitor.lifecycle = IncidentLifecycle.from_state(
                state["lifecycle"], config.quiet_intervals, config.window_intervals
            )
            incident = state["incident"]
            monitor.incident = None if incident is None else dict(incident)
            if "window_starts" in state:
                found = {} if intervals is None else intervals
                monitor.window = [_Interval.from_state(found[start])
                                  for start in state["window_starts"]]
            else:
                monitor.window = [_Interval.from_state(item) for item in state["window"]]
            monitor.trend = [dict(point) for point in state["trend"]]
            monitor.terms.load_state(state["terms"])
            monitor.current = _Interval.from_state(state["current"])
            monitor.wave_storylines = StorylineSet.from_state(state.get("wave_storylines"))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"brand monitor state is incomplete or malformed: {exc!r}") from None
        if monitor.lifecycle.is_open != (monitor.incident is not None):
            raise ValueError("brand monitor state: lifecycle and incident disagree")
        return monitor

