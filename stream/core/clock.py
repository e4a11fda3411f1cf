"""Event time per account partition: watermarks, lateness and due sweeps.

Timer rules ("no key event for 14 days") must fire in event time so that
replaying last month gives exactly what live processing gave. Calls reach an
account partition along *lanes*: each input partition directly, and each input
partition through each partition of the user directory. Every call carries the
highest event time its input partition had reached (its ``lane_max``), and
the first hop and the directory send that progress to every account partition
after each batch, so every lane advances even where it carries no data:

* a call is late when it is more than the allowed lateness behind its own
  ``lane_max``: a fact of the input partition's order, not of batching or of
  how lanes interleave;
* the watermark is the minimum over the lanes of their progress, minus the
  lateness; the partition sweeps midnight ``M`` once it passes it, so any call
  dated before ``M`` that comes afterwards is late by its own ``lane_max``:
  a sweep sees exactly the accepted calls dated before ``M``.

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
    #: Longer than any stall of a consumer (a rebalance, a restart): a lane
    #: silent this long is taken as having nothing to send.
    idle_ms: int = 300_000


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
        return orjson.dumps(self.document())

    def document(self) -> dict[str, Any]:
        return {"lanes": self.lanes, "floor": self.floor, "swept": self.swept, "earliest": self.earliest}

    @classmethod
    def load(cls, raw: bytes | None, wall_ms: int, expected_lanes: tuple[str, ...] = ()) -> PartitionClock:
        """Restore a clock. Every known or expected lane counts as just heard,
        so a restart waits ``idle_ms`` for each before declaring it idle."""
        d: Any = orjson.loads(raw) if raw else {}
        if isinstance(d, int):  # written before lanes were kept: a bare clock
            d = {"lanes": {}, "floor": 0, "swept": 0}
        return cls.from_document(d, wall_ms, expected_lanes)

    @classmethod
    def from_document(cls, d: dict[str, Any], wall_ms: int, expected_lanes: tuple[str, ...] = ()) -> PartitionClock:
        clock = cls(
            lanes=dict(d.get("lanes", {})),
            floor=d.get("floor", 0),
            swept=d.get("swept", 0),
            earliest=d.get("earliest", 0),
        )
        clock.heard = dict.fromkeys((*clock.lanes, *expected_lanes), wall_ms)
        return clock

    def is_late(self, lane_max: int, ts: int, rules: TimeRules) -> bool:
        """Too old to apply: more than the lateness behind the highest event
        time its input partition had reached (``lane_max``, carried by the
        call). Only the call's own input partition decides, so the same calls
        are late in a live run, a replay and offline. (A call dated before a
        swept midnight is always late by this rule when every lane was active;
        one from a lane taken as idle is applied, and counts from the next
        sweep on.)"""
        return ts < lane_max - rules.allowed_lateness_ms

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


#: Batch boundaries of the first hop's running maximum kept per input partition.
LANE_HISTORY = 256


def lane_max_before(history: list[list[int]], offset: int) -> int:
    """The highest event time of an input partition before ``offset``, from
    the ``[next_offset, running_max]`` pairs the first hop stored after each
    of its batches (0 if none is that early).

    A first hop that restarts, or takes over a partition, resumes at its
    committed offset, a batch boundary: so it resumes with exactly the running
    maximum it (or a replay from offset 0) had there, and a call is late or
    not whatever crashed in between. The running maximum only grows with the
    offset, so the latest boundary at or before ``offset`` has it."""
    return max((top for next_offset, top in history if next_offset <= offset), default=0)


def record_lane_max(history: list[list[int]], next_offset: int, top: int) -> list[list[int]]:
    """``history`` with the boundary ``next_offset`` added, the most recent
    :data:`LANE_HISTORY` boundaries kept (a boundary seen again after a restart
    has the same maximum: the input did not change)."""
    by_offset = {o: t for o, t in history}
    by_offset[next_offset] = max(top, by_offset.get(next_offset, 0))
    return [[o, by_offset[o]] for o in sorted(by_offset)[-LANE_HISTORY:]]


def lateness_detail(lane_max: int, ts: int, rules: TimeRules) -> str:
    return f"event time {ts} is more than {rules.allowed_lateness_ms} ms behind its input partition's latest {lane_max}"


def input_lanes(topic: str, input_partitions: int) -> tuple[str, ...]:
    """The lane of each input partition: what a directory partition hears from."""
    return tuple(f"d:{topic}:{q}" for q in range(input_partitions))


def expected_lanes(topic: str, input_partitions: int, user_partitions: int) -> tuple[str, ...]:
    """Every lane an account partition hears from: each input partition
    directly, and through each partition of the user directory."""
    direct = input_lanes(topic, input_partitions)
    return direct + tuple(f"u{p}:{d}" for p in range(user_partitions) for d in direct)
