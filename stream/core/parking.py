"""When a parked call gives up: on how far the whole input has been read.

A track call naming no account waits in the user directory for the user's
group call (:func:`stream.core.routing.apply_to_directory`). The group call is
keyed by account and the parked call by user, so they come from different
input partitions, and a consumer may read one partition days of event time
ahead of another (measured: 8 days on a 400k-call backlog read by one worker).
Judged by the user's own later calls, a parked call gave up while its group
call, dated before it, was still unread on a lagging partition.

So each directory partition keeps the progress of every input partition, as
the first hop reports it (a :class:`~stream.core.clock.PartitionClock` over the
direct lanes), and a parked call gives up only once that watermark (every
input partition read past it, minus the allowed lateness) is more than the
grace period past the call. A group call dated within the grace that is not
late in its own partition has then been read, whatever the interleaving; the
outcome depends on the calls, not on how fast each partition was read.

The directory partition also keeps which users have calls parked and the
earliest of them, so giving up is a sweep of those users when the watermark
moves, not something that waits for the user's next call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.core.clock import PartitionClock, TimeRules
from stream.core.envelope import Envelope
from stream.core.routing import DirectoryEntry, ParkingLimits


@dataclass(slots=True)
class DirectoryClock:
    """One directory partition: the input's progress and the parked users."""

    #: lanes: ``d:<input topic>:<partition>`` -> highest event time read
    progress: PartitionClock = field(default_factory=PartitionClock)
    #: user id -> event time of the user's earliest parked call
    parked: dict[str, int] = field(default_factory=dict)

    def observe(self, lane: str, ts: int, wall_ms: int) -> None:
        self.progress.observe(lane, ts, wall_ms)

    def watermark(self, rules: TimeRules, wall_ms: int) -> int:
        return self.progress.watermark(rules, wall_ms)

    def note(self, user_id: str, entry: DirectoryEntry) -> bool:
        """Keep the parked index in step with ``entry`` after a change to it;
        True if the index changed."""
        earliest = min((parked["ts"] for parked in entry.pending), default=None)
        if earliest is None:
            return self.parked.pop(user_id, None) is not None
        if self.parked.get(user_id) == earliest:
            return False
        self.parked[user_id] = earliest
        return True

    def due(self, watermark: int, parking: ParkingLimits) -> list[str]:
        """Users with a parked call that has waited past the grace period."""
        limit = watermark - parking.grace_ms
        return sorted(user_id for user_id, earliest in self.parked.items() if earliest < limit)

    def dump(self) -> bytes:
        return orjson.dumps({"progress": self.progress.document(), "parked": self.parked})

    @classmethod
    def load(cls, raw: bytes | None, wall_ms: int, input_lanes: tuple[str, ...]) -> DirectoryClock:
        """Every input lane counts as just heard (see ``PartitionClock.load``)."""
        d: dict[str, Any] = orjson.loads(raw) if raw else {}
        progress = PartitionClock.from_document(d.get("progress", {}), wall_ms, input_lanes)
        return cls(progress, dict(d.get("parked", {})))


def give_up_parked(
    clock: DirectoryClock, entry_of: Callable[[str], DirectoryEntry], watermark: int, parking: ParkingLimits
) -> dict[str, list[Envelope]]:
    """The directory partition's step after each batch: every user with a call
    due gives those calls up (``entry_of`` gives the user's entry, changed in
    place). Returns user -> the calls given up, for each user the index had due."""
    out: dict[str, list[Envelope]] = {}
    for user_id in clock.due(watermark, parking):
        entry = entry_of(user_id)
        out[user_id] = expire_parked(entry, watermark, parking)
        clock.note(user_id, entry)
    return out


def expire_parked(entry: DirectoryEntry, watermark: int, parking: ParkingLimits) -> list[Envelope]:
    """The entry's parked calls that waited past the grace period, removed
    from it (they go to the DLQ as ``no_account``)."""
    limit = watermark - parking.grace_ms
    keep: list[dict[str, Any]] = []
    expired: list[dict[str, Any]] = []
    for parked in entry.pending:
        (expired if parked["ts"] < limit else keep).append(parked)
    entry.pending = keep
    return [Envelope.from_dict(parked) for parked in expired]
