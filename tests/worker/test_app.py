"""The worker's wiring of its agents to the batch guard (stream/worker/faust_app.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from stream.worker import app as app_module
from stream.worker.app import ActivationWorker, user_key
from stream.worker.batching import in_partition_of
from stream.worker.faust_app import confirm_batch
from tests.worker.offline import offline_worker
from tests.worker.test_faust_app import FakeEvent, HeldProducer, RecordingConsumer, delivered_message


def worker_with_held_producer(tmp_path: Path) -> tuple[ActivationWorker, HeldProducer]:
    worker = offline_worker(tmp_path)
    producer = HeldProducer()
    worker.app._producer = producer
    return worker, producer


def test_every_table_is_confirmed_by_the_one_agent_that_writes_it(tmp_path: Path) -> None:
    worker, _producer = worker_with_held_producer(tmp_path)
    confirmed_by = Counter(table.name for tables in worker.tables_of.values() for table in tables)
    assert confirmed_by == {"accounts": 1, "users": 1, "directory": 1}
    assert [t.name for t in worker.tables_of["accounts"]] == ["accounts", "users"]


def test_another_agents_batch_never_takes_the_accounts_agents_writes(tmp_path: Path) -> None:
    """The loss this prevents: the directory's batch ending while an accounts
    batch's writes were unstored took and sent them; the accounts batch then
    found nothing to wait for, was committed, and a kill before the broker had
    the writes lost them (a user's identify traits, applied to its account)."""
    asyncio.run(_accounts_writes_stay_with_their_batch(tmp_path))


async def _accounts_writes_stay_with_their_batch(tmp_path: Path) -> None:
    worker, producer = worker_with_held_producer(tmp_path)
    with in_partition_of(FakeEvent(delivered_message(0, 1))):  # type: ignore[arg-type]
        worker.accounts[b"acct-1"] = b"account"
        worker.users[user_key("acct-1", "u1")] = b"user"

    for agent in ("directory",):
        async with confirm_batch([FakeEvent(delivered_message(5))], worker.tables_of[agent]):  # type: ignore[list-item]
            pass
    assert producer.sent == [], "another agent's batch sent the accounts agent's writes"

    async def accounts_batch() -> None:
        async with confirm_batch([FakeEvent(delivered_message(9, 1))], worker.tables_of["accounts"]):  # type: ignore[list-item]
            pass

    running = asyncio.ensure_future(accounts_batch())
    for _ in range(5):
        await asyncio.sleep(0)
    assert sorted(key for _topic, key, _value, _partition in producer.sent) == [b"acct-1", user_key("acct-1", "u1")]
    assert not running.done(), "the accounts batch was left before its writes were delivered"
    producer.deliver_all(first_offset=0)
    await asyncio.wait_for(running, 5)


class _OneTake:
    """A stream whose ``take_events`` hands over one batch."""

    def __init__(self, events: list[FakeEvent]) -> None:
        self.events = events

    async def take_events(self, max_: int, within: float):  # type: ignore[no-untyped-def]
        yield self.events


def test_a_take_is_stored_in_byte_bounded_batches_and_a_failure_holds_back_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each batch of a take is processed and stored before the next begins;
    when one fails, it and every batch after it stay unacknowledged, the
    batches before it (stored) do not."""
    monkeypatch.setattr(app_module, "PACKED_BATCH_BYTES", 2)  # two one-byte messages per batch
    asyncio.run(_byte_bounded_take(tmp_path))


async def _byte_bounded_take(tmp_path: Path) -> None:
    worker, _producer = worker_with_held_producer(tmp_path)
    worker.gaps.check = lambda events: None  # type: ignore[method-assign]
    messages = [delivered_message(n) for n in range(5)]
    stored: list[list[int]] = []

    def finish(pending: list[int]) -> None:
        if len(stored) == 1:
            raise OSError("the second batch's store failed")
        stored.append(pending)

    def handle(event, partition, pending, outbox) -> None:  # type: ignore[no-untyped-def]
        pending.append(event.message.offset)

    with pytest.raises(OSError):
        await worker._batches(_OneTake([FakeEvent(m) for m in messages]), (), lambda p: [], handle, finish)  # type: ignore[arg-type]
    assert stored == [[0, 1]]
    consumer = RecordingConsumer()
    for message in messages:
        message.ack(consumer)
    assert consumer.acked == [0, 1]
