"""What a batch sends: calls to the next hop, progress after them, outputs
keyed by account on the partition Kafka's default partitioner picks."""

from __future__ import annotations

import asyncio

import faust
import orjson

from stream.core.partitioning import partition_for
from stream.worker.batching import Outbox, unpack
from stream.worker.dlq import DeadLetters
from stream.worker.publisher import Publisher
from tests.worker.fake_producer import HeldProducer
from tests.worker.test_batching import _envelopes


def test_a_batch_is_sent_in_order_per_partition_and_waited_for() -> None:
    asyncio.run(_sent())


async def _sent() -> None:
    app = faust.App("test-publisher", broker="kafka://127.0.0.1:1")
    producer = HeldProducer(partitions=3)
    app._producer = producer
    topics = {name: app.topic(name) for name in ("users", "accounts", "changes", "alerts", "triggers", "dlq")}
    publisher = Publisher(
        2,
        topics["users"],
        topics["accounts"],
        topics["changes"],
        topics["alerts"],
        topics["triggers"],
        DeadLetters(topics["dlq"]),
    )
    envs = _envelopes(3)
    outbox = Outbox(2)
    outbox.to_users[1] += envs[:2]
    outbox.to_accounts[0].append(envs[2])
    outbox.advance("d:events:1", 1_700_000_000_002)
    outbox.advance("a:3", 1_700_000_000_001)
    record = {"kind": "account", "level": "account", "account_id": "acct-1", "event_time": "2026-12-01T00:00:00Z"}
    outbox.records.append(record)
    outbox.triggers.append({"kind": "no_first_key_action", "account_id": "acct-2"})
    sending = asyncio.ensure_future(publisher.send(outbox))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not sending.done(), "returned before the broker had the batch"
    by_destination: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
    for topic, key, value, partition in producer.sent:
        by_destination.setdefault((topic, partition), []).append((key, value))
    # calls first, then the progress that covers them, on every partition of the next hop
    assert [e for _k, v in by_destination["users", 1][:-1] for e in unpack(v)] == envs[:2]
    assert by_destination["users", 1][-1] == (
        b"\x00progress",
        orjson.dumps({"progress": {"d:events:1": 1_700_000_000_002}}),
    )
    assert by_destination["users", 0] == [by_destination["users", 1][-1]]
    assert [e for _k, v in by_destination["accounts", 0][:-1] for e in unpack(v)] == envs[2:]
    every = (b"\x00progress", orjson.dumps({"progress": {"d:events:1": 1_700_000_000_002, "a:3": 1_700_000_000_001}}))
    assert by_destination["accounts", 0][-1] == every
    assert by_destination["accounts", 1] == [every]
    # outputs keyed by account, where a producer's send would have put them
    assert by_destination["changes", partition_for("acct-1", 3)] == [(b"acct-1", orjson.dumps(record))]
    assert [k for k, _v in by_destination["triggers", partition_for("acct-2", 3)]] == [b"acct-2"]
    producer.deliver_all(first_offset=0)
    await asyncio.wait_for(sending, 5)
