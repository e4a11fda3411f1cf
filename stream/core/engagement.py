"""Weighted engagement: how much a user or account uses the product over time.

Activation says how far someone got; engagement says how much they use it
(seed 004: logging in is common and low value, creating a report rare and
valuable). Scores are absolute, in event time, built from per-day counts per
event name kept in our own state (Faust's windowed tables lose windows on
RocksDB after a rebalance). Counts, not weighted totals, are kept, so a new
criteria version with new weights re-scores history exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stream.core.timeutil import MS_PER_DAY

#: Days of counts kept: the 28-day window and the 28 days before it.
KEPT_DAYS = 56
#: A window's ``by_event`` lists at most this many events (the largest
#: contributions; ``by_event_omitted`` counts the rest, ``total`` includes them):
#: an account's distinct event names grow with its users.
MAX_BY_EVENT_IN_VIEW = 50

#: day index (days since the epoch, UTC) -> event name -> count
DayCounts = dict[int, dict[str, int]]


@dataclass(frozen=True, slots=True)
class EngagementRules:
    weights: tuple[tuple[str, float], ...] = ()
    default_weight: float = 0.0
    half_life_days: float = 7.0
    #: A window is "stable" while it changes by at most this share of the previous one.
    trend_tolerance: float = 0.1

    #: ``weights`` as a dict (the first weight of a name wins, as listed):
    #: looked up for every event of every day of a window at every sweep.
    by_name: dict[str, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, float] = {}
        for name, w in self.weights:
            by_name.setdefault(name, w)
        object.__setattr__(self, "by_name", by_name)

    def weight(self, event: str) -> float:
        return self.by_name.get(event, self.default_weight)


def day_of(ts_ms: int) -> int:
    return ts_ms // MS_PER_DAY


def add_event(days: DayCounts, ts_ms: int, event: str) -> None:
    """Count one event on its day, and forget days older than the kept range.

    The range is relative to the newest day held, so the kept counts are the
    same whatever order the events arrived in.
    """
    day = day_of(ts_ms)
    newest = max(days) if days else day
    if day <= newest - KEPT_DAYS:
        return
    counts = days.get(day)
    if counts is None:
        counts = days[day] = {}
        if day > newest:
            for old in [d for d in days if d <= day - KEPT_DAYS]:
                del days[old]
    counts[event] = counts.get(event, 0) + 1


def merge_days(into: DayCounts, other: DayCounts) -> None:
    for day, counts in other.items():
        target = into.setdefault(day, {})
        for event, n in counts.items():
            target[event] = target.get(event, 0) + n
    if into:
        newest = max(into)
        for old in [d for d in into if d <= newest - KEPT_DAYS]:
            del into[old]


def window_score(days: DayCounts, rules: EngagementRules, first_day: int, last_day: int) -> float:
    """:func:`window_total`'s total alone, summed in the same order (so equal to
    it): what alert rules read for every account at every sweep."""
    weights, default = rules.by_name, rules.default_weight
    total = 0.0
    for day in range(first_day, last_day + 1):
        counts = days.get(day)
        if counts:
            for event, n in counts.items():
                w = weights.get(event, default)
                if w:
                    total += w * n
    return total


def window_total(
    days: DayCounts, rules: EngagementRules, first_day: int, last_day: int
) -> tuple[float, dict[str, float]]:
    total = 0.0
    by_event: dict[str, float] = {}
    for day in range(first_day, last_day + 1):
        for event, n in days.get(day, {}).items():
            w = rules.weight(event)
            if w:
                by_event[event] = by_event.get(event, 0.0) + w * n
                total += w * n
    return total, by_event


def _trend(current: float, previous: float, tolerance: float) -> tuple[float | None, str]:
    if previous == 0:
        return None, "rising" if current > 0 else "stable"
    change = (current - previous) / previous
    if change > tolerance:
        return change, "rising"
    if change < -tolerance:
        return change, "falling"
    return change, "stable"


def decayed_score(days: DayCounts, rules: EngagementRules, now_ms: int) -> float:
    """Σ weight × 2^(−age / half-life), age from the middle of each event's day
    (day resolution; never negative)."""
    score = 0.0
    for day, counts in days.items():
        age_days = max(0.0, (now_ms - (day * MS_PER_DAY + MS_PER_DAY / 2)) / MS_PER_DAY)
        factor = 2.0 ** (-age_days / rules.half_life_days)
        for event, n in counts.items():
            score += rules.weight(event) * n * factor
    return score


def engagement_view(days: DayCounts, rules: EngagementRules, now_ms: int) -> dict[str, Any]:
    """Score, and 7- and 28-day windows ending today with the window before each."""
    today = day_of(now_ms)
    out: dict[str, Any] = {
        "score": round(decayed_score(days, rules, now_ms), 3),
        "half_life_days": rules.half_life_days,
    }
    for length in (7, 28):
        current, by_event = window_total(days, rules, today - length + 1, today)
        previous, _ = window_total(days, rules, today - 2 * length + 1, today - length)
        change, direction = _trend(current, previous, rules.trend_tolerance)
        ranked = sorted(by_event.items(), key=lambda kv: (-kv[1], kv[0]))
        out[f"window_{length}d"] = {
            "total": round(current, 3),
            "previous": round(previous, 3),
            "change": None if change is None else round(change, 4),
            "direction": direction,
            "by_event": {e: round(v, 3) for e, v in ranked[:MAX_BY_EVENT_IN_VIEW]},
            "by_event_omitted": max(0, len(ranked) - MAX_BY_EVENT_IN_VIEW),
        }
    return out
