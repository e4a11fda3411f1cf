"""A table's changelog messages, handed to the producer as whole record batches per partition.

A batch of the accounts agent writes thousands of table keys and the
changelog message of each went through ``producer.send`` one at a time: a
coroutine, a metadata check, a sensor call, a future and a look-up of the
partition's open batch per message, 7-11% of a worker's time in py-spy
profiles. Here the messages of a partition are appended to aiokafka's record
batch builders directly and each builder is submitted once.

aiokafka accepts a submitted builder for a partition only once the previous
one of that partition has left for the broker, so each partition's builders
are filled and submitted by a task of its own: the partitions go side by side
(one produce request carries a batch of each, as with ``producer.send``), and
a partition holds at most the builder on its way and the one being filled,
not a copy of everything it is sent. Builders are as large as the producer's
``max_batch_size`` (Faust's ``producer_max_batch_size``), so a broker that
takes the producer's batches takes these.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any


async def deliver(producer: Any, topic: str, messages: Mapping[int, Iterable[tuple[bytes, bytes]]]) -> dict[int, int]:
    """Send ``messages`` (partition -> key, value) to ``topic`` in their order
    per partition, wait until the broker has all of them, and return each
    partition's last offset (partitions without messages left out). Raises
    what the producer raises for any of them (nothing is known delivered then)."""
    client = producer._ensure_producer()  # Faust's wrapper around an AIOKafkaProducer
    partitions = list(messages)
    submitted = await asyncio.gather(*(_submit(client, topic, p, messages[p]) for p in partitions))
    await asyncio.gather(*(future for futures in submitted for future, _count in futures))
    return {
        partition: futures[-1][0].result().offset + futures[-1][1] - 1
        for partition, futures in zip(partitions, submitted, strict=True)
        if futures
    }


async def _submit(
    client: Any, topic: str, partition: int, pairs: Iterable[tuple[bytes, bytes]]
) -> list[tuple[asyncio.Future[Any], int]]:
    """One partition's messages in builders, each submitted as it fills:
    (its delivery future, how many messages it holds), in order."""
    submitted: list[tuple[asyncio.Future[Any], int]] = []
    builder, count = client.create_batch(), 0
    for key, value in pairs:
        if builder.append(key=key, value=value, timestamp=None) is None:
            # waits until the partition's previous builder has left for the broker
            submitted.append((await client.send_batch(builder, topic, partition=partition), count))
            builder, count = client.create_batch(), 0
            builder.append(key=key, value=value, timestamp=None)  # an empty builder takes any one message
        count += 1
    if count:
        submitted.append((await client.send_batch(builder, topic, partition=partition), count))
    return submitted
