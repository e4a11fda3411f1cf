"""Where a batch's outputs go: the internal topics, the output topics and the DLQ."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import faust
import orjson

from stream.core.activation import Record
from stream.core.timeutil import parse_timestamp_ms, utc_now_ms
from stream.worker import metrics
from stream.worker.batching import Outbox, pack
from stream.worker.dlq import DeadLetters


class Publisher:
    """Sends an :class:`Outbox` and waits until the broker has all of it."""

    def __init__(
        self,
        partitions: int,
        user_topic: faust.TopicT,
        account_topic: faust.TopicT,
        changes_topic: faust.TopicT,
        alerts_topic: faust.TopicT,
        triggers_topic: faust.TopicT,
        dlq: DeadLetters,
    ) -> None:
        self.partitions = partitions
        self.user_topic, self.account_topic = user_topic, account_topic
        self.changes_topic, self.alerts_topic, self.triggers_topic = changes_topic, alerts_topic, triggers_topic
        self.dlq = dlq
        self._names: dict[int, str] = {}

    async def _send(
        self, topic: faust.TopicT, value: bytes, *, key: bytes | None = None, partition: int | None = None
    ) -> Any:
        """Hand a message to the app's producer; returns its delivery future.

        Straight to the producer rather than through ``Topic.send``: that wraps
        every message in a ``FutureMessage``, a pending message and sensor
        callbacks this pipeline does not use, which cost as much as sending
        on batches with many outputs. The message itself is the same.
        """
        name = self._names.get(id(topic))
        if name is None:
            name = self._names[id(topic)] = topic.get_topic_name()
        return await topic.app.producer.send(name, key, value, partition=partition, timestamp=None, headers=None)

    async def send(self, outbox: Outbox) -> None:
        """Send what a batch produced and wait until the broker has all of it.

        Agents call this *before* writing the state (and its idempotency
        marks) that the batch changed: if the worker dies in between, the
        batch is processed again and re-sent, which downstream marks and
        record ids absorb. The other order would lose what was not yet sent.
        """
        # Sent now, to the producer (never attached to the current event, which
        # Faust would publish at the next commit, after the state's changelog:
        # the wrong order).
        pending: list[Any] = []
        for partition, envs in outbox.to_users.items():
            for packed in pack(envs):
                pending.append(await self._send(self.user_topic, packed, partition=partition))
        for partition, envs in outbox.to_accounts.items():
            for packed in pack(envs):
                pending.append(await self._send(self.account_topic, packed, partition=partition))
        if outbox.progress:  # after the data it covers, to every partition
            every = orjson.dumps({"progress": outbox.progress})
            direct = {k: v for k, v in outbox.progress.items() if k.startswith("d:")}
            to_users = orjson.dumps({"progress": direct}) if direct else None
            for partition in range(self.partitions):
                pending.append(await self._send(self.account_topic, every, key=b"\x00progress", partition=partition))
                if to_users is not None:
                    pending.append(
                        await self._send(self.user_topic, to_users, key=b"\x00progress", partition=partition)
                    )
        pending += await self._publish(outbox.records)
        for alert in outbox.alerts:
            metrics.counter_of(metrics.DRIFT_ALERTS, alert["kind"], alert["status"]).inc()
            pending.append(await self._send(self.alerts_topic, orjson.dumps(alert), key=alert["account_id"].encode()))
        for trigger in outbox.triggers:
            metrics.counter_of(metrics.TRIGGERS, trigger["kind"]).inc()
            pending.append(
                await self._send(self.triggers_topic, orjson.dumps(trigger), key=trigger["account_id"].encode())
            )
        for d in outbox.dead:
            pending.append(
                await self.dlq.send(d.reason, d.detail, d.value, d.key, d.topic, d.partition, d.offset, d.index)
            )
        for reason, detail, env in outbox.dead_envelopes:
            pending.append(await self.dlq.send_envelope(reason, detail, env))
        awaiting = [p for p in pending if inspect.isawaitable(p)]  # the rest is delivered already
        if awaiting:
            await asyncio.gather(*awaiting)

    async def _publish(self, records: list[Record]) -> list[Any]:
        """Send change records; returns their delivery futures."""
        now = utc_now_ms()
        pending: list[Any] = []
        for record in records:
            metrics.counter_of(metrics.CHANGES, record["kind"], record["level"]).inc()
            metrics.EVENT_TO_OUTPUT.observe(max(0.0, (now - parse_timestamp_ms(record["event_time"])) / 1000))
            pending.append(
                await self._send(self.changes_topic, orjson.dumps(record), key=record["account_id"].encode())
            )
        return pending
