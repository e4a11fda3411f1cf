"""Table changelog messages handed to the producer as whole record batches."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from stream.worker.record_batches import deliver
from tests.worker.fake_producer import HeldProducer, settle


def test_partitions_go_side_by_side_each_in_order() -> None:
    asyncio.run(_side_by_side())


async def _side_by_side() -> None:
    producer = HeldProducer(batch_capacity=2)
    messages = {
        0: [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4"), (b"e", b"5")],
        1: [(b"x", b"9")],
        2: [],
    }
    running = asyncio.ensure_future(deliver(producer, "t", messages))
    await settle()
    # the first batch of each partition; the next of t[0] waits for its first to leave
    assert [(p, k) for _t, k, _v, p in producer.sent] == [(0, b"a"), (0, b"b"), (1, b"x")]
    producer.deliver_all(first_offset=10)  # t[0]: 10-11, t[1]: 12
    await settle()
    assert [(p, k) for _t, k, _v, p in producer.sent[3:]] == [(0, b"c"), (0, b"d")]
    assert not running.done(), "returned before the broker had every batch"
    producer.deliver_all()  # t[0]: 13-14
    await settle()
    producer.deliver_all()  # t[0]: 15
    assert await asyncio.wait_for(running, 5) == {0: 15, 1: 12}
    assert producer.batch_sizes == [2, 1, 2, 1]


def test_a_batch_the_broker_refuses_fails_the_delivery() -> None:
    asyncio.run(_refused())


async def _refused() -> None:
    producer = HeldProducer(batch_capacity=1)
    running = asyncio.ensure_future(deliver(producer, "t", {0: [(b"a", b"1")], 1: [(b"b", b"2")]}))
    await settle()
    producer.deliveries[0].set_result(SimpleNamespace(offset=0))
    producer.deliveries[1].set_exception(RuntimeError("message too large"))
    with pytest.raises(RuntimeError, match="message too large"):
        await running


def test_a_message_larger_than_a_batch_goes_alone() -> None:
    asyncio.run(_alone())


async def _alone() -> None:
    producer = HeldProducer(batch_capacity=0)  # every builder is "full": only an empty one takes a message
    running = asyncio.ensure_future(deliver(producer, "t", {3: [(b"a", b"1"), (b"b", b"2")]}))
    await settle()
    producer.deliver_all(first_offset=0)
    await settle()
    producer.deliver_all()
    assert await asyncio.wait_for(running, 5) == {3: 1}
    assert producer.batch_sizes == [1, 1]
