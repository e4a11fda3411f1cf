"""The consumer hands each agent every offset of its partitions in order, also
across the seek to the committed offsets that follows a rebalance."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from stream.worker import metrics
from stream.worker.sequenced_consumer import OffsetSequencer, SequencedConsumer, Verdict
from tests.worker.offline import offline_worker

EVENTS = TP("activation-account-calls", 0)  # a topic the app's Faust consumer reads


# -- the bookkeeping alone -------------------------------------------------


def test_consecutive_offsets_are_handed_on() -> None:
    seq = OffsetSequencer()
    seq.positioned(EVENTS, 10)
    assert [seq.decide(EVENTS, o) for o in (10, 11, 12)] == [Verdict.HAND_ON] * 3
    assert seq.next_offset(EVENTS) == 13


def test_without_a_committed_offset_the_first_message_starts_the_sequence() -> None:
    seq = OffsetSequencer()
    seq.positioned(EVENTS, None)
    assert seq.decide(EVENTS, 57) is Verdict.HAND_ON
    assert seq.decide(EVENTS, 59) is Verdict.RESEEK


def test_offsets_already_handed_on_are_dropped() -> None:
    seq = OffsetSequencer()
    seq.positioned(EVENTS, 10)
    seq.decide(EVENTS, 10)
    assert seq.decide(EVENTS, 10) is Verdict.DROP
    assert seq.decide(EVENTS, 3) is Verdict.DROP
    assert seq.next_offset(EVENTS) == 11


def test_a_message_past_the_next_offset_is_fetched_again_not_handed_on() -> None:
    seq = OffsetSequencer()
    seq.positioned(EVENTS, 2086)
    assert seq.decide(EVENTS, 2095) is Verdict.RESEEK
    assert seq.next_offset(EVENTS) == 2086
    assert seq.decide(EVENTS, 2086) is Verdict.HAND_ON


def test_a_hole_seen_on_every_refetch_is_taken_as_a_real_gap() -> None:
    seq = OffsetSequencer(reseeks_before_gap=3)
    seq.positioned(EVENTS, 40)
    assert [seq.decide(EVENTS, 42) for _ in range(3)] == [Verdict.RESEEK] * 3
    assert seq.decide(EVENTS, 42) is Verdict.HAND_ON_GAP
    assert seq.next_offset(EVENTS) == 43


def test_a_different_stale_fetch_restarts_the_count() -> None:
    seq = OffsetSequencer(reseeks_before_gap=2)
    seq.positioned(EVENTS, 40)
    assert seq.decide(EVENTS, 42) is Verdict.RESEEK
    assert seq.decide(EVENTS, 50) is Verdict.RESEEK
    assert seq.decide(EVENTS, 42) is Verdict.RESEEK
    assert seq.decide(EVENTS, 42) is Verdict.RESEEK
    assert seq.decide(EVENTS, 42) is Verdict.HAND_ON_GAP


def test_only_the_message_last_handed_on_may_be_marked_read() -> None:
    seq = OffsetSequencer()
    seq.positioned(EVENTS, 5)
    seq.decide(EVENTS, 5)
    assert seq.may_mark_read(EVENTS, 5)
    assert not seq.may_mark_read(EVENTS, 6)
    seq.positioned(EVENTS, 3)  # a seek while offset 5 was being handed over
    assert not seq.may_mark_read(EVENTS, 5)


# -- the consumer around Faust's fetch loop --------------------------------


def message(tp: TP, offset: int) -> ConsumerMessage:
    return ConsumerMessage(
        topic=tp.topic,
        partition=tp.partition,
        offset=offset,
        timestamp=0.0,
        timestamp_type=0,
        headers=[],
        key=b"k",
        value=b"v",
        checksum=None,
    )


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> SequencedConsumer:
    """A SequencedConsumer of a real pipeline app, with Faust's fetch and its
    consumer thread replaced by scripted batches and recorded seeks."""
    app = offline_worker(tmp_path).app
    consumer = app.consumer
    assert isinstance(consumer, SequencedConsumer)
    batches: list[list[ConsumerMessage]] = []
    seeks: list[tuple[TP, int]] = []

    async def scripted_getmany(self: Any, timeout: float) -> AsyncIterator[tuple[TP, ConsumerMessage]]:
        for msg in batches.pop(0):
            yield msg.tp, msg

    async def recorded_seek(partition: TP, offset: int) -> None:
        seeks.append((partition, offset))

    async def committed() -> dict[TP, int]:
        return {EVENTS: 2086}

    monkeypatch.setattr(aiokafka_driver.Consumer, "getmany", scripted_getmany)
    monkeypatch.setattr(consumer, "_seek", recorded_seek)
    monkeypatch.setattr(consumer, "seek_to_committed", committed)
    consumer.batches = batches  # type: ignore[attr-defined]
    consumer.seeks = seeks  # type: ignore[attr-defined]
    return consumer


async def fetch(consumer: SequencedConsumer, offsets: Iterable[int]) -> list[int]:
    consumer.batches.append([message(EVENTS, o) for o in offsets])  # type: ignore[attr-defined]
    handed = []
    async for _tp, msg in consumer.getmany(timeout=0):
        handed.append(msg.offset)
        consumer._read_offset[EVENTS] = msg.offset  # as Faust's fetch loop does
    return handed


def test_a_batch_fetched_before_the_seek_is_fetched_again_from_the_committed_offset(
    consumer: SequencedConsumer,
) -> None:
    asyncio.run(_stale_batch(consumer))


async def _stale_batch(consumer: SequencedConsumer) -> None:
    await consumer.perform_seek()
    assert await fetch(consumer, range(2095, 2100)) == []
    assert consumer.seeks == [(EVENTS, 2086)]  # type: ignore[attr-defined]
    assert await fetch(consumer, range(2086, 2100)) == list(range(2086, 2100))
    assert consumer._read_offset[EVENTS] == 2099


def test_a_hand_over_that_spans_the_seek_does_not_move_the_read_offset(consumer: SequencedConsumer) -> None:
    asyncio.run(_hand_over_spanning_seek(consumer))


async def _hand_over_spanning_seek(consumer: SequencedConsumer) -> None:
    await consumer.perform_seek()
    assert await fetch(consumer, [2086, 2087]) == [2086, 2087]
    await consumer.perform_seek()  # a rebalance: back to the committed offset
    consumer._read_offset[EVENTS] = 2087  # Faust finishing the older hand-over
    assert consumer._read_offset[EVENTS] == 2086
    assert await fetch(consumer, [2086, 2087, 2088]) == [2086, 2087, 2088]


def test_a_real_gap_is_handed_on_after_the_refetches_and_counted(consumer: SequencedConsumer) -> None:
    asyncio.run(_real_gap(consumer))


async def _real_gap(consumer: SequencedConsumer) -> None:
    before = metrics.OFFSET_GAPS.labels(EVENTS.topic)._value.get()
    await consumer.perform_seek()
    for _ in range(3):
        assert await fetch(consumer, [2088, 2089]) == []
    assert await fetch(consumer, [2088, 2089]) == [2088, 2089]
    assert metrics.OFFSET_GAPS.labels(EVENTS.topic)._value.get() == before + 1
    assert consumer.seeks == [(EVENTS, 2086)] * 3  # type: ignore[attr-defined]


# -- the hand-over to the agents' queues -------------------------------------


def test_a_hand_over_that_need_not_wait_runs_at_once(consumer: SequencedConsumer) -> None:
    consumer.loop.run_until_complete(_hand_over_at_once(consumer))


async def _hand_over_at_once(consumer: SequencedConsumer) -> None:
    ran_in: list[asyncio.Task[Any] | None] = []

    async def callback(offset: int) -> int:
        ran_in.append(asyncio.current_task())
        return offset

    suspend = consumer.suspend_flow.wait()
    results = await consumer.wait_first(callback(7), suspend)
    assert results.results == [7] and not results.stopped
    assert ran_in == [asyncio.current_task()]  # in the fetch loop itself: no task per message
    assert suspend.cr_frame is None  # closed unstarted: no "never awaited" warning


def test_a_hand_over_that_waits_still_yields_to_a_suspended_flow(consumer: SequencedConsumer) -> None:
    consumer.loop.run_until_complete(_hand_over_suspended(consumer))  # Faust's race runs on the service's loop


async def _hand_over_suspended(consumer: SequencedConsumer) -> None:
    queue_has_room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    handed: list[str] = []
    began = asyncio.Event()

    async def callback() -> None:
        handed.append("began")
        began.set()
        await queue_has_room  # an agent's queue is full
        handed.append("delivered")

    waiting = asyncio.ensure_future(consumer.wait_first(callback(), consumer.suspend_flow.wait()))
    await began.wait()
    assert handed == ["began"] and not waiting.done()
    consumer.suspend_flow.set()  # a rebalance begins
    results = await waiting
    assert results.done and not results.stopped
    assert handed == ["began"]  # the blocked hand-over was abandoned, as Faust does
    assert queue_has_room.cancelled()


# -- the fetch wait ----------------------------------------------------------


def test_the_worker_consumer_fetches_with_the_configured_wait(tmp_path: Any) -> None:
    """Faust fixes 1,500 ms; the embedded broker holds every fetch without new
    messages that long, so the setting must reach aiokafka's consumer."""
    worker = offline_worker(tmp_path, fetch_wait_ms=70)
    app = worker.app

    async def created() -> Any:
        return app.consumer._thread._create_worker_consumer(app.transport)

    aiokafka_consumer = asyncio.run(created())
    assert aiokafka_consumer._fetch_max_wait_ms == 70
    assert aiokafka_consumer._group_id == worker.settings.app_id  # Faust's other settings kept
