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
from rocksdict import WriteBatch

from stream.settings import Settings
from stream.worker import gauges, metrics, record_batches
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
        #: partition -> key -> value written by the running batch: in neither
        #: the changelog nor RocksDB yet
        self.pending: dict[int, dict[bytes, bytes]] = {}
        #: the same, for batches whose changelog messages are being delivered
        self.delivering: list[dict[int, dict[bytes, bytes]]] = []
        #: keys whose value vouches for other keys' (a partition's criteria:
        #: every account and user re-evaluated), delivered after the rest
        self.marker_keys: frozenset[bytes] = frozenset()

    def _serializer_from_type(self, typ: Any) -> str:
        return "raw"

    def __setitem__(self, key: bytes, value: bytes) -> None:
        """Keep the write with the batch's others; :meth:`changelog_delivered`
        sends them and only then stores them.

        Why not RocksDB at once: a worker killed before the changelog has the
        batch would come back with a local store ahead of its changelog and of
        its outputs. The replayed batch then finds its own effects already
        applied and does nothing, so the outputs it never sent stay unsent, and
        a later restore elsewhere lacks its state.
        """
        event = current_event()
        if event is None:
            raise RuntimeError("table write outside stream iteration")
        self.pending.setdefault(event.message.partition, {})[key] = value

    def get(self, key: bytes, default: Any = None) -> Any:
        """Inside stream iteration, from the current event's partition, like
        Faust's own reads: some keys (the criteria, the partition clock) are
        in every partition."""
        event = current_event()
        if event is not None:
            value = self.get_in(event.message.partition, key)
            return default if value is None else value
        for writes in self._unstored():
            for partition_writes in writes.values():
                if key in partition_writes:
                    return partition_writes[key]
        return super().get(key, default)

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        """``key`` in one partition (usable outside stream iteration)."""
        for writes in self._unstored():
            value = writes.get(partition, {}).get(key)
            if value is not None:
                return value
        return self.data._db_for_partition(partition).get(key)  # type: ignore[no-any-return]

    def keys_in(self, partition: int) -> set[bytes]:
        """Every key of one partition, written by batches not yet stored included."""
        keys: set[bytes] = set(self.data._db_for_partition(partition).keys())
        for writes in self._unstored():
            keys.update(writes.get(partition, {}))
        keys.discard(self.data.offset_key)
        return keys

    def _unstored(self) -> tuple[dict[int, dict[bytes, bytes]], ...]:
        """Newest first: the running batch, then those being delivered."""
        return (self.pending, *reversed(self.delivering))

    async def changelog_delivered(self, markers: bool | None = None) -> None:
        """Send the writes since the last call to the changelog, wait until the
        broker has them all, then store them in RocksDB with the offsets reached
        (a restore resumes there), one atomic write per partition.

        ``markers``: only the marker keys (True), all but them (False), or all.
        A batch's changelog messages reach the broker in no particular order
        across tables, and a worker killed half-way restores whatever arrived;
        its replay must not find a marker saying the work is done when the
        work itself did not arrive."""
        writes = self._take(markers)
        if not writes:
            return
        self.delivering.append(writes)
        try:
            await self._deliver_and_store(writes)
        except BaseException:
            for partition, partition_writes in writes.items():  # a later batch sends them
                self.pending[partition] = {**partition_writes, **self.pending.get(partition, {})}
            raise
        finally:
            self.delivering.remove(writes)

    def _take(self, markers: bool | None) -> dict[int, dict[bytes, bytes]]:
        """The pending writes ``changelog_delivered(markers)`` sends, removed from pending."""
        if markers and not self.marker_keys:
            return {}
        if markers is None or not self.marker_keys:  # everything: no per-key split
            taken, self.pending = self.pending, {}
            return taken
        taken = {}
        for partition, writes in list(self.pending.items()):
            chosen = {k: v for k, v in writes.items() if (k in self.marker_keys) == markers}
            if chosen:
                taken[partition] = chosen
                for key in chosen:
                    del writes[key]
                if not writes:
                    del self.pending[partition]
        return taken

    async def _deliver_and_store(self, writes: dict[int, dict[bytes, bytes]]) -> None:
        topic = self.changelog_topic.get_topic_name()
        reached = await record_batches.deliver(
            self.app.producer, topic, {partition: w.items() for partition, w in writes.items()}
        )
        store = self.data
        for partition, partition_writes in writes.items():  # never empty: see _take
            batch = WriteBatch(raw_mode=True)
            for key, value in partition_writes.items():
                batch.put(key, value)
            batch.put(store.offset_key, str(reached[partition]).encode())
            store._db_for_partition(partition).write(batch)
            for key in partition_writes:
                store._key_index[key] = partition

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
    cancellation, keep ``events`` from ever being acknowledged (the batch's
    messages, and any taken with them and not processed yet).

    ``tables``: the tables this agent writes, and no other agent does. A
    confirmation delivers whatever a table holds unstored; given another
    agent's table it would take that agent's writes, and the other agent's
    own confirmation, finding nothing left, would let its batch be committed
    while those writes were still on their way (a kill then lost them)."""
    try:
        yield
        await asyncio.gather(*(t.changelog_delivered(markers=False) for t in tables))
        await asyncio.gather(*(t.changelog_delivered(markers=True) for t in tables))
    except BaseException:
        for event in events:
            event.message.incref()  # take_events' ack then leaves it pending
        raise


class OffsetGapWatch:
    """Counts and logs each time an agent is handed a message past the next
    offset of its partition: the offsets in between were never processed.

    A second line of defence behind the sequenced consumer
    (stream/worker/sequenced_consumer.py), which keeps Faust from doing so
    after a rebalance; it should stay silent. On a topic written without
    transactions or compaction (all of this pipeline's internal topics)
    offsets are consecutive, so a gap means messages were skipped. The
    expected offset is the last one processed + 1, or after a rebalance the
    group's committed offset.
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


class StreamApp(faust.App):
    """Faust's app without its ``Monitor`` sensor.

    The monitor keeps Faust's own statistics (for its ``/stats`` page, which
    this worker does not serve) and is called for every message and every
    event: 2% of a single-call worker. The worker's figures are its own
    Prometheus metrics (:mod:`stream.worker.metrics`)."""

    def on_init_dependencies(self) -> Any:
        dependencies = super().on_init_dependencies()  # adds the monitor to the sensors
        self.sensors.remove(self.monitor)
        return dependencies


class RawSchema(faust.Schema):
    """Keys and values as the bytes on the wire, with no serializer lookups.

    Faust's own schema decodes every message it hands an agent through its
    serializer registry, even for the ``raw`` codec that returns the bytes
    as they are: 4% of a single-call worker's time. Every topic here carries
    bytes the agents decode themselves, so the event is made directly.
    """

    def __init__(self) -> None:
        super().__init__(key_serializer="raw", value_serializer="raw")

    def compile(self, app: Any, *, default_propagate: bool = False, **_handlers: Any) -> Any:
        event = app.conf.Event  # looked up once: ``app.create_event`` reads the settings every time

        async def decode(message: Any, *, propagate: bool = default_propagate) -> Any:
            return event(app, message.key, message.value, message.headers, message)

        return decode


def raw_topic(app: faust.App, name: str, **options: Any) -> faust.TopicT:
    """A topic of bytes (each its own schema: Faust updates a topic's schema in place)."""
    return app.topic(name, schema=RawSchema(), **options)


def raw_table(app: faust.App, name: str, partitions: int) -> RawTable:
    table = RawTable(app, name=name, partitions=partitions, beacon=app.tables.beacon, options=dict(ROCKSDB_OPTIONS))
    app.tables.add(table)
    return table


def make_app(settings: Settings) -> faust.App:
    app = StreamApp(
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
    app.transport = SequencedTransport(app.conf.broker_consumer, app, fetch_wait_ms=settings.fetch_wait_ms)
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
