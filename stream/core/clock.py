"""Event time per account partition: watermarks, lateness and due sweeps.

Timer rules ("no key event for 14 days") must fire in event time so that
replaying last month gives exactly what live processing gave. A partition's
watermark is the highest event time seen minus the allowed lateness, taken per
*lane* (one input partition, directly or through the user directory) and then
the minimum over the lanes still delivering, the way Flink does it:

* whether a call is late depends only on the calls before it in its own lane,
  which is an ordered log, so it does not depend on how the lanes interleave;
* the partition sweeps midnight ``M`` only once every active lane is past
  ``M`` + lateness, so any call dated before ``M`` that comes afterwards is late
  in its lane: a sweep sees exactly the accepted calls dated before ``M``.

A lane that delivers nothing for ``idle_ms`` of wall time stops holding the
watermark back; when every lane is idle the watermark follows the wall clock
from where it stood, so absence is noticed even when no events arrive. Wall
time enters only through the ``wall_ms`` arguments the shell passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.core.timeutil import MS_PER_DAY


@dataclass(frozen=True, slots=True)
class TimeRules:
    allowed_lateness_ms: int = 6 * 3_600_000
    idle_ms: int = 30_000


@dataclass(slots=True)
class PartitionClock:
    #: lane -> highest event time of a track call applied from it
    lanes: dict[str, int] = field(default_factory=dict)
    #: the watermark never moves back below this
    floor: int = 0
    #: the last midnight (ms) swept
    swept: int = 0
    #: the earliest event time applied: sweeps start at the midnight after it
    earliest: int = 0
    #: lane -> wall time it last delivered (memory only: reset on load)
    heard: dict[str, int] = field(default_factory=dict)

    @property
    def newest(self) -> int:
        """The highest event time applied on the partition (0 if none)."""
        return max(self.lanes.values(), default=0)

    def dump(self) -> bytes:
        return orjson.dumps({"lanes": self.lanes, "floor": self.floor, "swept": self.swept, "earliest": self.earliest})

    @classmethod
    def load(cls, raw: bytes | None, wall_ms: int, expected_lanes: tuple[str, ...] = ()) -> PartitionClock:
        """Restore a clock. Every known or expected lane counts as just heard,
        so a restart waits ``idle_ms`` for each before declaring it idle."""
        d: dict[str, Any] = orjson.loads(raw) if raw else {}
        if isinstance(d, int):  # written before lanes were kept: a bare clock
            d = {"lanes": {}, "floor": 0, "swept": 0}
        clock = cls(
            lanes=dict(d.get("lanes", {})),
            floor=d.get("floor", 0),
            swept=d.get("swept", 0),
            earliest=d.get("earliest", 0),
        )
        clock.heard = dict.fromkeys((*clock.lanes, *expected_lanes), wall_ms)
        return clock

    def is_late(self, lane: str, ts: int, rules: TimeRules) -> bool:
        """Too old to apply: behind its lane by more than the lateness, or dated
        before a midnight already swept."""
        top = self.lanes.get(lane)
        return (top is not None and ts < top - rules.allowed_lateness_ms) or ts < self.swept

    def observe(self, lane: str, ts: int, wall_ms: int) -> None:
        if ts > self.lanes.get(lane, ts - 1):
            self.lanes[lane] = ts
        if not self.earliest or ts < self.earliest:
            self.earliest = ts
        self.heard[lane] = wall_ms

    def watermark(self, rules: TimeRules, wall_ms: int) -> int:
        """The current watermark (monotone; also stored in ``floor``)."""
        active = [lane for lane, at in self.heard.items() if wall_ms - at < rules.idle_ms]
        if active:
            # an expected lane that never delivered holds the watermark at 0
            mark = min(self.lanes.get(lane, 0) for lane in active) - rules.allowed_lateness_ms
        elif self.lanes:
            last_heard = max(self.heard.values(), default=wall_ms)
            mark = self.newest - rules.allowed_lateness_ms + max(0, wall_ms - last_heard)
        else:
            mark = 0
        if mark > self.floor:
            self.floor = mark
        return self.floor

    def due_midnights(self, watermark: int) -> list[int]:
        """Midnights not yet swept at or below the watermark, oldest first,
        starting with the midnight after the partition's earliest event (any
        call dated before that first sweep and arriving after it is late in its
        lane, so where the sweeps start does not depend on batching)."""
        if not self.earliest:
            return []
        first = self.swept + MS_PER_DAY if self.swept else self.earliest - self.earliest % MS_PER_DAY + MS_PER_DAY
        return list(range(first, watermark + 1, MS_PER_DAY))


def lateness_detail(clock: PartitionClock, lane: str, ts: int, rules: TimeRules) -> str:
    top = clock.lanes.get(lane)
    if top is not None and ts < top - rules.allowed_lateness_ms:
        return f"event time {ts} is more than {rules.allowed_lateness_ms} ms behind its lane's latest {top}"
    return f"event time {ts} is before the midnight {clock.swept} already evaluated"
