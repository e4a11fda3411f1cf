"""Complete changelog recovery, whatever high watermark the broker reports.

Faust restores a table by reading its changelog up to the "highwater" it gets
from ListOffsets(latest). Some Kafka-compatible brokers (the embedded one among
them) answer with the last *batch's* base offset + 1, so the records after the
first one of the final batch are never restored: a worker restarted on an
empty data dir silently loses them.

The fix is read-only and broker-agnostic: after Faust asks for highwaters, we
measure the real end of each changelog partition by fetching from the reported
end until the broker signals end-of-partition (a Fetch carries the correct
high watermark; see ``measured_end_offsets`` for why its fetches may wait).
On Apache Kafka this reads at most one record per partition and changes
nothing.

The recovery service also keeps the recovery gauges current
(``stream_recovery_remaining_messages``), during recovery included: the app's
timers start only after the first one.

Before Faust reads the active changelog partitions, the bulk phase
(stream/worker/bulk_restore.py) reads them from the restored offset + 1 to the
measured end straight into RocksDB, 9-16x faster than Faust's message-by-message
path here (bench/restore.py), and moves Faust's offsets past what it wrote: Faust's recovery then
finds nothing (or only what the bulk phase left) to read, and does everything
else as before (readiness, standbys, the seek of the input partitions). The
bulk phase runs inside Faust's "build offsets" step, which Faust times out
after ``broker_request_timeout`` (90 s) by stopping the whole recovery
service, so it stops itself after ``BULK_BUDGET`` of that and leaves the rest
to Faust: slower, never wrong. It is skipped for standby partitions (they are
not waited on) and in transactional mode.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from faust.stores.rocksdb import Store as RocksDBStore
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from mode import Service

from stream.kafka_admin import measured_end_offsets
from stream.settings import Settings
from stream.worker import metrics
from stream.worker.bulk_restore import Changelog, Gate, restore_changelogs
from stream.worker.gauges import refresh_recovery

log = logging.getLogger("stream.recovery")

#: Share of Faust's ``broker_request_timeout`` the bulk phase may take (the
#: rest of that timeout covers Faust's own request in the same step and the
#: reader's last chunk).
BULK_BUDGET = 0.6


class MeasuredEndRecovery(Recovery):  # type: ignore[misc]
    """Faust's recovery, with highwaters measured instead of trusted, and the
    active changelogs read in bulk before Faust reads what is left."""

    client_conf: Mapping[str, Any] = {}
    #: Seconds between two refreshes of the recovery gauges.
    gauge_interval: float = 1.0
    #: Read active changelogs in bulk before Faust does (STREAM_BULK_RESTORE).
    bulk_restore: bool = True
    _bulk_gate: Gate | None = None
    _bulk_executor: ThreadPoolExecutor | None = None

    @Service.task
    async def _refresh_gauges(self) -> None:
        """Runs as long as the service does, ready or not (refresh_recovery never raises)."""
        async for _sleep_time in self.itertimer(self.gauge_interval, name="Recovery.gauges"):
            refresh_recovery(self.tables)
            # readiness too, so it turns 1 as soon as a restore ends (the app's
            # gauge timer runs only every 15 s)
            metrics.WORKER_READY.set(1 if self.app.rebalancing is False and self.completed.is_set() else 0)

    async def _build_highwaters(self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        if not tps or self.app.in_transaction:
            return
        # Faust keeps "last offset" (highwater - 1; -1 when empty).
        reported = {(tp.topic, tp.partition): destination[tp] + 1 for tp in tps}
        measured = await asyncio.to_thread(measured_end_offsets, self.client_conf, reported)
        for tp in tps:
            last = measured[(tp.topic, tp.partition)] - 1
            if last != destination[tp]:
                log.info("%s changelog %s: broker said end %d, measured %d", title, tp, destination[tp] + 1, last + 1)
                destination[tp] = last

    async def _build_offsets(self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str) -> None:
        await super()._build_offsets(consumer, tps, destination, title)
        if title == "active" and self.bulk_restore and tps and not self.app.in_transaction:
            budget = BULK_BUDGET * float(self.app.conf.broker_request_timeout)
            await self._bulk(tps, destination, time.monotonic() + budget)

    async def _bulk(self, tps: set[TP], offsets: Counter[TP], deadline: float) -> None:
        """Restore ``tps`` from ``offsets[tp] + 1`` to their measured end in a
        thread, and move ``offsets`` (Faust's active offsets) past what was
        written: chunk by chunk, for the gauges, and at the end."""
        changelogs = {}
        for tp in sorted(tps):
            changelog = self._changelog_to_restore(tp, offsets[tp] + 1, self.active_highwaters.get(tp, -1) + 1)
            if changelog is not None:
                changelogs[tp] = changelog
        if not changelogs:
            return
        total = sum(c.end - c.start for c in changelogs.values())
        log.info("Bulk restore: reading up to %d messages from %d changelog partitions", total, len(changelogs))
        started = time.monotonic()
        self._stop_bulk()
        gate = self._bulk_gate = Gate()
        loop = asyncio.get_running_loop()

        def advance(tp: TP, offset: int) -> None:  # on the loop
            if gate.is_open and tp in self.active_tps and offsets[tp] < offset:
                offsets[tp] = offset
                self._active_events_received_at[tp] = time.monotonic()  # Faust's "no event received" watchdog

        def on_chunk(c: Changelog, offset: int, messages: int) -> None:  # in the reader's thread
            metrics.RECOVERY_RESTORED.labels(c.table).inc(messages)
            loop.call_soon_threadsafe(advance, TP(c.topic, c.partition), offset)

        if self._bulk_executor is None:
            self._bulk_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-restore")
        # one reader at a time: a reader stopped by a rebalance finishes its
        # chunk before the next one starts
        future = self._bulk_executor.submit(
            restore_changelogs, self.client_conf, list(changelogs.values()), gate, deadline, on_chunk
        )
        try:
            await asyncio.wrap_future(future)
        except asyncio.CancelledError:  # a rebalance or a stop: Faust starts over
            gate.close()
            raise
        except Exception as exc:
            log.warning("Bulk restore failed, Faust's recovery restores the rest: %r", exc, exc_info=True)
        gate.close()
        for tp, c in changelogs.items():
            if tp in self.active_tps and offsets[tp] < c.written:
                offsets[tp] = c.written
        seconds = time.monotonic() - started
        messages = sum(c.messages for c in changelogs.values())
        left = sum(1 for c in changelogs.values() if not c.finished)
        log.info(
            "Bulk restore: done, %d messages in %.1fs (%.0f/s); %d of %d partitions left to Faust's recovery",
            messages,
            seconds,
            messages / max(seconds, 1e-3),
            left,
            len(changelogs),
        )

    def _changelog_to_restore(self, tp: TP, start: int, end: int) -> Changelog | None:
        """The bulk job for one active changelog partition, or None (nothing to
        read, or not a RocksDB table on rocksdict: Faust's recovery does it)."""
        table = self.tp_to_table.get(tp)
        store = getattr(table, "data", None)
        if start >= end or not isinstance(store, RocksDBStore) or not store.use_rocksdict:
            return None
        try:
            db = store._db_for_partition(tp.partition)
        except Exception as exc:  # e.g. still locked by a previous owner: Faust retries it
            log.warning("Bulk restore: %s not opened (%r), left to Faust's recovery", tp, exc)
            return None
        return Changelog(tp.topic, tp.partition, start, end, db, store.offset_key, table=table.name)

    def _stop_bulk(self) -> None:
        """Stop a running bulk reader (it writes nothing more once this returns)."""
        if self._bulk_gate is not None:
            self._bulk_gate.close()

    def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self._stop_bulk()  # a rebalance begins: the partitions may go to another worker
        super().on_partitions_revoked(revoked)

    async def on_rebalance(self, *args: Any, **kwargs: Any) -> None:
        self._stop_bulk()
        await super().on_rebalance(*args, **kwargs)

    async def on_stop(self) -> None:
        self._stop_bulk()
        if self._bulk_executor is not None:
            self._bulk_executor.shutdown(wait=False)
        await super().on_stop()


def complete_recovery_table_manager(settings: Settings) -> type[TableManager]:
    """A table manager whose recovery is :class:`MeasuredEndRecovery` (pass it
    as the app's ``TableManager`` setting)."""
    from stream.kafka_admin import client_conf

    attrs = {"client_conf": client_conf(settings), "bulk_restore": settings.bulk_restore}
    recovery_cls = type("ConfiguredRecovery", (MeasuredEndRecovery,), attrs)

    class CompleteRecoveryTableManager(TableManager):  # type: ignore[misc]
        @property
        def recovery(self) -> Recovery:
            if self._recovery is None:
                self._recovery = recovery_cls(self.app, self, beacon=self.beacon, loop=self.loop)
            return self._recovery

    return CompleteRecoveryTableManager
