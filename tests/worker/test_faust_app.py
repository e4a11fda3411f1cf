"""The batch guard around Faust: a batch is acknowledged only once its table
writes are on the broker, and never when it fails half-way."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.types.tuples import ConsumerMessage

from stream.worker.batching import in_partition_of
from stream.worker.faust_app import RawTable, confirm_batch, raw_table


class FakeEvent:
    def __init__(self, message: ConsumerMessage) -> None:
        self.message = message


class RecordingConsumer:
    """Stands in for Faust's consumer: records the offsets it may commit."""

    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: ConsumerMessage) -> bool:
        self.acked.append(message.offset)
        return True


def delivered_message(offset: int) -> ConsumerMessage:
    """A message as the conductor hands it to one stream (one reference)."""
    message = ConsumerMessage("input", 0, offset, 0.0, 0, None, b"k", b"v", None)
    message.incref()
    return message


def table() -> RawTable:
    app = faust.App("test-faust-app", broker="kafka://127.0.0.1:1", store="memory://")
    return raw_table(app, "accounts", 1)


def write(t: RawTable, key: bytes, value: bytes) -> None:
    with in_partition_of(FakeEvent(delivered_message(0))):  # type: ignore[arg-type]
        t[key] = value


def test_a_batch_is_left_only_after_its_changelog_is_delivered() -> None:
    asyncio.run(_left_only_after_delivery())


async def _left_only_after_delivery() -> None:
    t = table()
    write(t, b"acct", b"state")
    [sent] = t.unconfirmed
    events = [FakeEvent(delivered_message(7))]

    async def batch() -> None:
        async with confirm_batch(events, [t]):  # type: ignore[arg-type]
            pass

    running = asyncio.ensure_future(batch())
    for _ in range(5):
        await asyncio.sleep(0)  # let the task run as far as it can
    assert not running.done(), "the batch was left before its changelog write was delivered"
    sent.set_result(None)
    await asyncio.wait_for(running, 5)
    assert t.unconfirmed == []


def test_a_failed_changelog_delivery_fails_the_batch() -> None:
    asyncio.run(_failed_delivery())


async def _failed_delivery() -> None:
    t = table()
    write(t, b"acct", b"state")
    t.unconfirmed[0].set_exception(RuntimeError("broker gone"))
    message = delivered_message(3)
    consumer = RecordingConsumer()
    with pytest.raises(RuntimeError, match="broker gone"):
        async with confirm_batch([FakeEvent(message)], [t]):  # type: ignore[arg-type]
            pass
    message.ack(consumer)  # what take_events does when the batch is left
    assert consumer.acked == []


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


def test_every_table_write_is_awaited() -> None:
    asyncio.run(_every_write())


async def _every_write() -> None:
    t = table()
    for n in range(3):
        write(t, f"k{n}".encode(), b"v")
    assert len(t.unconfirmed) == 3
