"""The batch guard around Faust: a batch is acknowledged only once its table
writes are on the broker, and never when it fails half-way."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import faust
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream.worker.batching import in_partition_of
from stream.worker.faust_app import RawSchema, RawTable, StreamApp, confirm_batch, raw_table, raw_topic
from tests.worker.fake_producer import HeldProducer, settle


class FakeEvent:
    def __init__(self, message: ConsumerMessage) -> None:
        self.message = message
        self.value = message.value


class RecordingConsumer:
    """Stands in for Faust's consumer: records the offsets it may commit."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True


def delivered_message(offset: int, partition: int = 0) -> ConsumerMessage:
    """A message as the conductor hands it to one stream (one reference)."""
    message = ConsumerMessage("input", partition, offset, 0.0, 0, None, b"k", b"v", None)
    message.incref()
    return message


def table(datadir: Path) -> tuple[RawTable, HeldProducer]:
    app = faust.App("test-faust-app", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(datadir))
    producer = HeldProducer()
    app._producer = producer
    return raw_table(app, "accounts", 2), producer


def write(t: RawTable, key: bytes, value: bytes, partition: int = 1) -> None:
    with in_partition_of(FakeEvent(delivered_message(0, partition))):  # type: ignore[arg-type]
        t[key] = value


def test_a_write_is_readable_at_once_and_its_changelog_waits_for_the_batch(tmp_path: Path) -> None:
    asyncio.run(_readable_at_once(tmp_path))


async def _readable_at_once(tmp_path: Path) -> None:
    t, producer = table(tmp_path)
    write(t, b"acct", b"state")
    with in_partition_of(FakeEvent(delivered_message(1, 1))):  # type: ignore[arg-type]
        assert t.get(b"acct") == b"state"
    assert producer.sent == []  # not yet: with the batch's other writes


def test_a_batch_is_left_only_after_its_changelog_is_delivered(tmp_path: Path) -> None:
    asyncio.run(_left_only_after_delivery(tmp_path))


async def _left_only_after_delivery(tmp_path: Path) -> None:
    t, producer = table(tmp_path)
    write(t, b"a", b"1")
    write(t, b"b", b"2")
    events = [FakeEvent(delivered_message(7))]

    async def batch() -> None:
        async with confirm_batch(events, [t]):  # type: ignore[arg-type]
            pass

    running = asyncio.ensure_future(batch())
    await settle()
    assert [(k, v, p) for _topic, k, v, p in producer.sent] == [(b"a", b"1", 1), (b"b", b"2", 1)]
    assert producer.sent[0][0] == t.changelog_topic.get_topic_name()
    assert not running.done(), "the batch was left before its changelog writes were delivered"
    producer.deliver_all(first_offset=40)
    await asyncio.wait_for(running, 5)
    # a restore of this partition resumes after the last write delivered
    assert t.data.persisted_offset(TP(t.changelog_topic.get_topic_name(), 1)) == 41
    assert t.pending == {}
    assert t.data._db_for_partition(1).get(b"b") == b"2"


def test_a_failed_changelog_delivery_fails_the_batch(tmp_path: Path) -> None:
    asyncio.run(_failed_delivery(tmp_path))


async def _failed_delivery(tmp_path: Path) -> None:
    t, producer = table(tmp_path)
    write(t, b"acct", b"state")
    message = delivered_message(3)
    consumer = RecordingConsumer()

    async def batch() -> None:
        async with confirm_batch([FakeEvent(message)], [t]):  # type: ignore[arg-type]
            pass

    running = asyncio.ensure_future(batch())
    await settle()
    producer.deliveries[0].set_exception(RuntimeError("broker gone"))
    with pytest.raises(RuntimeError, match="broker gone"):
        await running
    message.ack(consumer)  # what take_events does when the batch is left
    assert consumer.acked == []
    # not stored, still readable, and sent again with the next batch
    assert t.data._db_for_partition(1).get(b"acct") is None
    assert t.get_in(1, b"acct") == b"state"
    assert t.pending == {1: {b"acct": b"state"}}


def test_a_write_reaches_rocksdb_only_after_its_changelog(tmp_path: Path) -> None:
    """A worker killed before the broker has a batch's changelog messages must
    not come back with that batch in its local store: the replayed batch
    would find its effects applied and never send the outputs it owes."""
    asyncio.run(_stored_after_changelog(tmp_path))


async def _stored_after_changelog(tmp_path: Path) -> None:
    t, producer = table(tmp_path)
    write(t, b"acct", b"v1", partition=0)
    write(t, b"acct", b"v2", partition=0)  # the batch's last value wins
    write(t, b"other", b"x", partition=1)
    db = t.data._db_for_partition(0)
    running = asyncio.ensure_future(t.changelog_delivered())
    await settle()
    assert [(k, v) for _topic, k, v, _p in producer.sent] == [(b"acct", b"v2"), (b"other", b"x")]
    assert db.get(b"acct") is None  # being delivered: not stored, yet readable
    assert t.get_in(0, b"acct") == b"v2"
    assert t.keys_in(0) == {b"acct"}
    producer.deliver_all(first_offset=7)
    await asyncio.wait_for(running, 5)
    assert db.get(b"acct") == b"v2"
    assert t.data.persisted_offset(TP(t.changelog_topic.get_topic_name(), 0)) == 7
    assert t.data.persisted_offset(TP(t.changelog_topic.get_topic_name(), 1)) == 8
    assert t.keys_in(0) == {b"acct"}


def test_a_write_outside_a_stream_is_refused(tmp_path: Path) -> None:
    t, _producer = table(tmp_path)
    with pytest.raises(RuntimeError, match="outside stream iteration"):
        t[b"acct"] = b"state"


@pytest.mark.parametrize("failure", [ValueError("bug"), asyncio.CancelledError()])
def test_a_batch_left_half_way_is_never_acknowledged(failure: BaseException) -> None:
    asyncio.run(_left_half_way(failure))


async def _left_half_way(failure: BaseException) -> None:
    messages = [delivered_message(n) for n in range(3)]
    consumer = RecordingConsumer()
    with pytest.raises(type(failure)):
        async with confirm_batch([FakeEvent(m) for m in messages], []):  # type: ignore[arg-type]
            raise failure
    for message in messages:
        message.ack(consumer)
    assert consumer.acked == []


def test_a_batch_that_succeeds_is_acknowledged() -> None:
    asyncio.run(_succeeds())


async def _succeeds() -> None:
    messages = [delivered_message(n) for n in range(3)]
    consumer = RecordingConsumer()
    async with confirm_batch([FakeEvent(m) for m in messages], []):  # type: ignore[arg-type]
        pass
    for message in messages:
        message.ack(consumer)
    assert consumer.acked == [0, 1, 2]


def test_skipped_offsets_are_counted() -> None:
    from stream.worker import metrics
    from stream.worker.faust_app import OffsetGapWatch

    app = SimpleNamespace(consumer=SimpleNamespace(_committed_offset={TP("input", 0): 10}))
    watch = OffsetGapWatch(app)  # type: ignore[arg-type]
    before = metrics.OFFSET_GAPS.labels("input")._value.get()
    watch.check([FakeEvent(delivered_message(n)) for n in (10, 11, 12)])  # type: ignore[list-item]
    assert metrics.OFFSET_GAPS.labels("input")._value.get() == before
    watch.check([FakeEvent(delivered_message(15))])  # type: ignore[list-item]
    assert metrics.OFFSET_GAPS.labels("input")._value.get() == before + 1
    watch.forget()  # a rebalance: reading resumes at the committed offset
    watch.check([FakeEvent(delivered_message(n)) for n in (10, 11)])  # type: ignore[list-item]
    assert metrics.OFFSET_GAPS.labels("input")._value.get() == before + 1
    watch.forget()
    watch.check([FakeEvent(delivered_message(11))])  # type: ignore[list-item]  # offset 10 never handed over
    assert metrics.OFFSET_GAPS.labels("input")._value.get() == before + 2


def test_a_key_in_every_partition_is_read_from_the_current_events(tmp_path: Path) -> None:
    t, _producer = table(tmp_path)
    write(t, b"clock", b"p0", partition=0)
    write(t, b"clock", b"p1", partition=1)
    for partition, value in ((0, b"p0"), (1, b"p1")):
        with in_partition_of(FakeEvent(delivered_message(5, partition))):  # type: ignore[arg-type]
            assert t.get(b"clock") == value
    with in_partition_of(FakeEvent(delivered_message(5, 1))):  # type: ignore[arg-type]
        assert t.get(b"absent", b"default") == b"default"


def test_marker_keys_reach_the_broker_only_after_every_other_write_of_the_batch(tmp_path: Path) -> None:
    """A partition's criteria say every account and user was re-evaluated:
    restored without them, a replayed criteria change would skip the work."""
    asyncio.run(_markers_last(tmp_path))


async def _markers_last(tmp_path: Path) -> None:
    app = faust.App("test-markers", broker="kafka://127.0.0.1:1", store="rocksdb://", datadir=str(tmp_path))
    producer = HeldProducer()
    app._producer = producer
    accounts, users = raw_table(app, "accounts", 2), raw_table(app, "users", 2)
    accounts.marker_keys = frozenset({b"criteria"})
    write(accounts, b"criteria", b"v4")
    write(accounts, b"acct", b"state")
    write(users, b"user", b"state")
    batch = asyncio.ensure_future(_confirmed([accounts, users]))
    await settle()
    assert sorted(k for _t, k, _v, _p in producer.sent) == [b"acct", b"user"]  # not the marker yet
    producer.deliveries[0].set_result(SimpleNamespace(offset=0))
    await settle()
    assert len(producer.sent) == 2, "the marker went out before the users table's write arrived"
    producer.deliveries[1].set_result(SimpleNamespace(offset=0))
    await settle()
    assert [k for _t, k, _v, _p in producer.sent[2:]] == [b"criteria"]
    assert accounts.get_in(1, b"criteria") == b"v4"  # readable all along
    producer.deliveries[2].set_result(SimpleNamespace(offset=1))
    await asyncio.wait_for(batch, 5)
    assert accounts.data._db_for_partition(1).get(b"criteria") == b"v4"


async def _confirmed(tables: list[RawTable]) -> None:
    async with confirm_batch([FakeEvent(delivered_message(9))], tables):  # type: ignore[arg-type]
        pass


def test_a_raw_topic_hands_its_agents_the_bytes_faust_would(tmp_path: Path) -> None:
    app = faust.App("test-raw-schema", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    faust_own = faust.Schema(key_serializer="raw", value_serializer="raw").compile(app)
    ours = RawSchema().compile(app)
    headers = [("h", b"1")]
    for key, value in ((b"k", b'{"type":"track"}'), (None, b"\xff not json"), (b"k", None)):
        message = ConsumerMessage("input", 0, 7, 0.0, 0, headers, key, value, None)
        expected, event = asyncio.run(faust_own(message)), asyncio.run(ours(message))
        assert (event.key, event.value, event.headers) == (expected.key, expected.value, expected.headers)
        assert event.message is message
    topic = raw_topic(app, "input")
    assert (topic.key_serializer, topic.value_serializer) == ("raw", "raw")  # what `send` encodes with


def test_the_app_runs_without_fausts_per_message_monitor(tmp_path: Path) -> None:
    app = StreamApp("test-no-monitor", broker="kafka://127.0.0.1:1", datadir=str(tmp_path))
    app.on_init_dependencies()  # where Faust adds its monitor
    assert app.monitor not in set(app.sensors)
