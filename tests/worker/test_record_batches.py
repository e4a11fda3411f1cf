"""Table writes and outputs handed to the producer as whole record batches."""

from __future__ import annotations

import asyncio

import pytest

from stream.worker.record_batches import deliver
from tests.worker.fake_producer import HeldProducer


def test_messages_go_in_batches_one_round_per_batch_of_every_partition() -> None:
    asyncio.run(_rounds())


async def _rounds() -> None:
    producer = HeldProducer(batch_capacity=2)
    messages = {
        ("t", 0): [(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4"), (b"e", b"5")],
        ("t", 1): [(b"x", b"9")],
        ("u", 0): [],
    }
    running = asyncio.ensure_future(deliver(producer, messages))
    for _ in range(5):
        await asyncio.sleep(0)
    # every message once, in its order within its partition, three batches of p0 and one of p1
    assert producer.batch_sizes == [2, 1, 2, 1]
    assert [(p, k) for _t, k, _v, p in producer.sent] == [
        (0, b"a"),
        (0, b"b"),
        (1, b"x"),
        (0, b"c"),
        (0, b"d"),
        (0, b"e"),
    ]
    assert not running.done(), "returned before the broker had every batch"
    producer.deliver_all(first_offset=10)  # p0: 10-11, p1: 12, p0: 13-14, p0: 15
    assert await asyncio.wait_for(running, 5) == {("t", 0): 15, ("t", 1): 12}


def test_a_batch_the_broker_refuses_fails_the_delivery() -> None:
    asyncio.run(_refused())


async def _refused() -> None:
    producer = HeldProducer(batch_capacity=1)
    running = asyncio.ensure_future(deliver(producer, {("t", 0): [(b"a", b"1"), (b"b", b"2")]}))
    for _ in range(5):
        await asyncio.sleep(0)
    producer.deliveries[0].set_result(type("Meta", (), {"offset": 0})())
    producer.deliveries[1].set_exception(RuntimeError("message too large"))
    with pytest.raises(RuntimeError, match="message too large"):
        await running


def test_a_message_larger_than_a_batch_goes_alone() -> None:
    asyncio.run(_alone())


async def _alone() -> None:
    producer = HeldProducer(batch_capacity=0)  # every builder is "full": only an empty one takes a message
    running = asyncio.ensure_future(deliver(producer, {("t", 3): [(b"a", b"1"), (b"b", b"2")]}))
    for _ in range(5):
        await asyncio.sleep(0)
    assert producer.batch_sizes == [1, 1]
    producer.deliver_all(first_offset=0)
    assert await asyncio.wait_for(running, 5) == {("t", 3): 1}
