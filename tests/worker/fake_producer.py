"""Faust's producer as the pipeline uses it, with deliveries the test controls."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any


class HeldProducer:
    """Stands in for Faust's producer and its aiokafka client: every record
    batch waits until the test says the broker has it, and, as in aiokafka, a
    partition's next batch is taken only once its previous one is gone (here:
    delivered)."""

    def __init__(self, batch_capacity: int = 100) -> None:
        self.batch_capacity = batch_capacity
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.deliveries: list[asyncio.Future[Any]] = []
        self.batch_sizes: list[int] = []
        self.next_offset = 0
        self._last: dict[tuple[str, int], asyncio.Future[Any]] = {}

    def _ensure_producer(self) -> HeldProducer:
        return self

    def create_batch(self) -> FakeBatchBuilder:
        return FakeBatchBuilder(self.batch_capacity)

    async def send_batch(self, batch: FakeBatchBuilder, topic: str, *, partition: int) -> asyncio.Future[Any]:
        previous = self._last.get((topic, partition))
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        self.sent += [(topic, key, value, partition) for key, value in batch.messages]
        self.batch_sizes.append(len(batch.messages))
        self.deliveries.append(asyncio.get_running_loop().create_future())
        self._last[topic, partition] = self.deliveries[-1]
        return self.deliveries[-1]

    def deliver_all(self, first_offset: int | None = None) -> None:
        """Every batch sent and not yet delivered, at consecutive offsets in
        the order they were sent (from ``first_offset``, else on from the last)."""
        if first_offset is not None:
            self.next_offset = first_offset
        for size, fut in zip(self.batch_sizes, self.deliveries, strict=True):
            if not fut.done():
                fut.set_result(SimpleNamespace(offset=self.next_offset))  # a batch's base offset
                self.next_offset += size


class FakeBatchBuilder:
    """aiokafka's ``BatchBuilder``, as far as it is used: ``append`` says
    None once the batch is full (an empty one takes any message)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.messages: list[tuple[bytes | None, bytes]] = []

    def append(self, *, key: bytes | None, value: bytes, timestamp: float | None) -> object | None:
        if self.messages and len(self.messages) >= self.capacity:
            return None
        self.messages.append((key, value))
        return object()


async def settle() -> None:
    """Let every task run as far as it can."""
    for _ in range(20):
        await asyncio.sleep(0)
