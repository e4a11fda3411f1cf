"""The Faust app and its tables, configured for at-least-once with state.

Two things here exist because Faust's own guarantees stop short of what the
pipeline needs:

* Table writes reach the changelog through Faust's producer buffer, which
  commits input offsets without waiting for it, and whose flush on a rebalance
  or a shutdown gives up after 0.1 s without a send. A partition handed to
  another worker could then be restored without the last writes of a batch
  whose offsets were already committed: calls lost, silently. So a
  :class:`RawTable` write goes to RocksDB at once and its changelog message is
  sent with the rest of the batch's, and :func:`confirm_batch` waits until the
  broker has them all before the batch is acknowledged.
* Faust's ``take_events`` acknowledges a batch's messages when the batch is
  left, even when it is left by an exception or a cancellation half-way.
  :func:`confirm_batch` keeps such a batch unacknowledged, so its offsets are
  never committed and it is processed again (idempotently) after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import faust
from faust.streams import current_event
from faust.types import TP, EventT

from stream.settings import Settings
from stream.worker import gauges, metrics
from stream.worker.recovery import complete_recovery_table_manager
from stream.worker.sequenced_consumer import SequencedTransport

log = logging.getLogger("stream.worker")


class RawTable(faust.Table):  # type: ignore[misc]
    """A table of bytes to bytes: values are the core's own compact encoding.

    Faust picks the json codec for a table without a model, and bakes it into
    the changelog topic when the table is registered; HTTP routing then hashes
    a json-quoted key and asks the wrong worker. Raw from the start avoids both
    that and encoding every value twice.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (partition, key, value) written and not yet sent to the changelog
        self.unsent: list[tuple[int, bytes, bytes]] = []

    def _serializer_from_type(self, typ: Any) -> str:
        return "raw"

    def __setitem__(self, key: bytes, value: bytes) -> None:
        """Write to the current event's partition now; its changelog message
        goes out with the batch's in :meth:`changelog_delivered`.

        Faust's own path costs a future, a trip through its producer buffer
        and a second RocksDB write (the persisted offset) per key; a batch
        writes thousands of keys.
        """
        event = current_event()
        if event is None:
            raise RuntimeError("table write outside stream iteration")
        partition = event.message.partition
        store = self.data
        store._db_for_partition(partition).put(key, value)
        store._key_index[key] = partition
        self.unsent.append((partition, key, value))

    async def changelog_delivered(self) -> None:
        """Send every write since the last call to the changelog, wait until the
        broker has them all, then record the offsets reached (restores resume
        there)."""
        unsent, self.unsent = self.unsent, []
        if not unsent:
            return
        producer = self.app.producer
        topic = self.changelog_topic.get_topic_name()
        sends = [
            await producer.send(topic, key, value, partition=partition, timestamp=None, headers=None)
            for partition, key, value in unsent
        ]
        reached: dict[int, int] = {}
        for (partition, _key, _value), meta in zip(unsent, await asyncio.gather(*sends), strict=True):
            reached[partition] = max(reached.get(partition, -1), meta.offset)
        for partition, offset in reached.items():
            self.data.set_persisted_offset(TP(topic, partition), offset)

    async def on_changelog_event(self, event: EventT) -> None:
        """Faust's recovery calls this once per changelog message it restores
        (or a standby copy follows): counted for the recovery metrics."""
        await super().on_changelog_event(event)
        gauges.count_restored(self.app.tables.recovery, self.name, event.message.tp)


@asynccontextmanager
async def confirm_batch(events: Sequence[EventT], tables: Sequence[RawTable]) -> AsyncIterator[None]:
    """Around one batch of an agent: on success, wait until the changelog has
    every write of the batch (Faust acknowledges the batch, and may commit its
    offsets, as soon as the agent asks for the next one); on failure or
    cancellation, keep the batch's messages from ever being acknowledged."""
    try:
        yield
        await asyncio.gather(*(t.changelog_delivered() for t in tables))
    except BaseException:
        for event in events:
            event.message.incref()  # take_events' ack then leaves it pending
        raise


class OffsetGapWatch:
    """Counts and logs each time an agent is handed a message past the next
    offset of its partition: the offsets in between were never processed.

    Only a watch: on a topic written without transactions or compaction (all
    of this pipeline's internal topics) offsets are consecutive, so a gap means
    the consumer skipped messages, and Faust would then commit past them. It
    happens right after a rebalance ("expected 2086, got 2095" after the seek
    to the committed offsets). Seeking the consumer back to the missing offset
    stalled the partition (the re-fetch never reached the agent), so for now
    it is counted and logged. The expected offset is the last one processed
    + 1, or after a rebalance the group's committed offset.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.next: dict[TP, int] = {}

    def forget(self) -> None:
        """Partitions moved: resume from the committed offsets."""
        self.next.clear()

    def check(self, events: Sequence[EventT]) -> None:
        committed = self.app.consumer._committed_offset
        for event in events:
            message = event.message
            tp = message.tp
            expected = self.next.get(tp)
            if expected is None:
                expected = committed.get(tp)
            if expected is not None and message.offset > expected:
                metrics.OFFSET_GAPS.labels(tp.topic).inc()
                log.warning(
                    "offsets skipped on %s[%d]: expected %d, got %d", tp.topic, tp.partition, expected, message.offset
                )
            self.next[tp] = max(message.offset + 1, self.next.get(tp, 0))


#: RocksDB memory per table partition (Faust's defaults are 3 x 64 MB memtables
#: and a 2 GB block cache for each, which no worker of ours needs). A worker
#: opens one database per table and partition (16 with the defaults), so this
#: bounds their memory to ~16 x 24 MB; the whole state of the 100k-user
#: benchmark is ~85 MB on disk.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 2**20,
    "max_write_buffer_number": 2,
    "block_cache_size": 16 * 2**20,
    "block_cache_compressed_size": 0,
}


def raw_table(app: faust.App, name: str, partitions: int) -> RawTable:
    table = RawTable(app, name=name, partitions=partitions, beacon=app.tables.beacon, options=dict(ROCKSDB_OPTIONS))
    app.tables.add(table)
    return table


def make_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=settings.faust_broker,
        store="rocksdb://",
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=settings.standby_replicas,
        broker_session_timeout=settings.group.session_timeout_s,
        broker_heartbeat_interval=settings.group.heartbeat_interval_s,
        broker_rebalance_timeout=settings.group.rebalance_timeout_s,
        stream_recovery_delay=0.0,
        broker_credentials=faust_credentials(settings),
        TableManager=complete_recovery_table_manager(settings),
    )
    # set before anything asks the app for its transport (it is created lazily)
    app.transport = SequencedTransport(app.conf.broker_consumer, app)
    return app


def faust_credentials(settings: Settings) -> Any:
    """SASL/SSL for Faust's own clients, from the same environment variables."""
    sec = settings.security
    if sec.protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=sec.ssl_cafile) if "SSL" in sec.protocol else None
    if sec.protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=sec.sasl_username,
            password=sec.sasl_password,
            mechanism=sec.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)
