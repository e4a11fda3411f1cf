"""The ``directory`` agent (user-keyed): remember users' accounts and traits,
resolve calls that name no account, and give up on parked calls.

A mixin of :class:`stream.worker.app.ActivationWorker`: the agent's batches go
through the worker's ``_batches`` like the accounts agent's. Each directory
partition keeps a :class:`~stream.core.parking.DirectoryClock` under
``CLOCK_KEY`` in the directory table: how far every input partition has been
read (from the first hop's progress messages) and which users have calls
parked. It is a marker key, stored only once the batch's entries are: a
restored clock must never vouch for an expiry whose entry did not arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import EventT

from stream.core.clock import input_lanes
from stream.core.envelope import Envelope
from stream.core.parking import DirectoryClock, give_up_parked
from stream.core.routing import DirectoryEntry, apply_to_directory, user_lane
from stream.core.timeutil import utc_now_ms
from stream.worker.batching import PROGRESS_PREFIX, Outbox, each_call
from stream.worker.reads import CLOCK_KEY

if TYPE_CHECKING:
    from collections.abc import Callable

    import faust

    from stream.settings import Settings
    from stream.worker.faust_app import RawTable

NO_ACCOUNT_DETAIL = "no group call named this user's account in time"


@dataclass
class DirectoryBatch:
    """One directory partition's part of a batch: the entries it changed."""

    partition: int
    entries: dict[str, DirectoryEntry] = field(default_factory=dict)
    clock_changed: bool = False
    #: The wall clock when the batch began (read once, not per call).
    now: int = field(default_factory=utc_now_ms)


class DirectoryHop:
    settings: Settings
    directory: RawTable
    tables_of: dict[str, tuple[RawTable, ...]]
    directory_clocks: dict[int, DirectoryClock]
    _batches: Callable[..., Any]

    def directory_clock(self, partition: int) -> DirectoryClock:
        clock = self.directory_clocks.get(partition)
        if clock is None:
            raw = self.directory.get_in(partition, CLOCK_KEY)
            inputs = self.settings.input_partitions or self.settings.partitions
            clock = DirectoryClock.load(raw, utc_now_ms(), input_lanes(self.settings.topics.events, inputs))
            self.directory_clocks[partition] = clock
        return clock

    async def directory_agent(self, stream: faust.StreamT[bytes]) -> None:
        await self._batches(
            stream,
            self.tables_of["directory"],
            DirectoryBatch,
            self._directory_one,
            self._write_entries,
            self._give_up_parked,
        )

    def _directory_one(self, event: EventT[bytes], partition: int, batch: DirectoryBatch, outbox: Outbox) -> None:
        if event.value.startswith(PROGRESS_PREFIX):  # the first hop's progress, passed on through this partition
            clock = self.directory_clock(partition)
            for lane, ts in orjson.loads(event.value)["progress"].items():
                outbox.advance(user_lane(partition, lane), ts)
                clock.observe(lane, ts, batch.now)
            batch.clock_changed = True
            return
        each_call(event.value, outbox, lambda env: self._directory_call(env, batch, outbox))

    def _entry(self, user_id: str, batch: DirectoryBatch) -> DirectoryEntry:
        entry = batch.entries.get(user_id)
        if entry is None:
            entry = batch.entries[user_id] = DirectoryEntry.from_bytes(self.directory.get(user_id.encode()))
        return entry

    def _directory_call(self, env: Envelope, batch: DirectoryBatch, outbox: Outbox) -> None:
        entry = self._entry(env.user_id, batch)
        outcome = apply_to_directory(entry, env, batch.partition, self.settings.parking)
        if self.directory_clock(batch.partition).note(env.user_id, entry):
            batch.clock_changed = True
        for rejected in outcome.rejected:
            outbox.dead_envelopes.append(("no_account", NO_ACCOUNT_DETAIL, rejected))
        for fwd in outcome.forward:
            outbox.to_account(fwd)

    def _give_up_parked(self, partition: int, batch: DirectoryBatch, outbox: Outbox) -> None:
        """After the partition's part of a batch: parked calls the whole input
        has passed by the grace period go to the DLQ (see stream.core.parking)."""
        clock = self.directory_clock(partition)
        watermark = clock.watermark(self.settings.time, utc_now_ms())
        given_up = give_up_parked(clock, lambda user_id: self._entry(user_id, batch), watermark, self.settings.parking)
        for expired in given_up.values():
            outbox.dead_envelopes += [("no_account", NO_ACCOUNT_DETAIL, call) for call in expired]
        if given_up:
            batch.clock_changed = True

    def _write_entries(self, batch: DirectoryBatch) -> None:
        for user_id, entry in batch.entries.items():
            self.directory[user_id.encode()] = entry.to_bytes()
        if batch.clock_changed:
            self.directory[CLOCK_KEY] = self.directory_clock(batch.partition).dump()
            batch.clock_changed = False
        batch.entries.clear()
