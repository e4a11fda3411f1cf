"""Complete changelog recovery, whatever high watermark the broker reports.

Faust restores a table by reading its changelog up to the "highwater" it gets
from ListOffsets(latest). Some Kafka-compatible brokers (the embedded one among
them) answer with the last *batch's* base offset + 1, so the records after the
first one of the final batch are never restored: a worker restarted on an
empty data dir silently loses them.

The fix is read-only and broker-agnostic: after Faust asks for highwaters, we
measure the real end of each changelog partition by fetching from the reported
end until the broker signals end-of-partition (a Fetch carries the correct
high watermark). On Apache Kafka this reads at most one record per partition
and changes nothing.

The recovery service also keeps the recovery gauges current
(``stream_recovery_remaining_messages``), during recovery included: the app's
timers start only after the first one.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from mode import Service

from stream.kafka_admin import measured_end_offsets
from stream.settings import Settings
from stream.worker import metrics
from stream.worker.gauges import refresh_recovery

log = logging.getLogger("stream.recovery")


class MeasuredEndRecovery(Recovery):  # type: ignore[misc]
    """Faust's recovery, with highwaters measured instead of trusted."""

    client_conf: Mapping[str, Any] = {}
    #: Seconds between two refreshes of the recovery gauges.
    gauge_interval: float = 1.0

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


def complete_recovery_table_manager(settings: Settings) -> type[TableManager]:
    """A table manager whose recovery is :class:`MeasuredEndRecovery` (pass it
    as the app's ``TableManager`` setting)."""
    from stream.kafka_admin import client_conf

    recovery_cls = type("ConfiguredRecovery", (MeasuredEndRecovery,), {"client_conf": client_conf(settings)})

    class CompleteRecoveryTableManager(TableManager):  # type: ignore[misc]
        @property
        def recovery(self) -> Recovery:
            if self._recovery is None:
                self._recovery = recovery_cls(self.app, self, beacon=self.beacon, loop=self.loop)
            return self._recovery

    return CompleteRecoveryTableManager
