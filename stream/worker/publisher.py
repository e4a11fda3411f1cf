"""Where a batch's outputs go: the internal topics, the output topics and the DLQ."""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from typing import Any

import faust
import orjson

from stream.core.partitioning import partition_for
from stream.core.timeutil import parse_timestamp_ms, utc_now_ms
from stream.worker import metrics, record_batches
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

    def _name(self, topic: faust.TopicT) -> str:
        name = self._names.get(id(topic))
        if name is None:
            name = self._names[id(topic)] = topic.get_topic_name()
        return name

    async def send(self, outbox: Outbox) -> None:
        """Send what a batch produced and wait until the broker has all of it.

        Agents call this *before* writing the state (and its idempotency
        marks) that the batch changed: if the worker dies in between, the
        batch is processed again and re-sent, which downstream marks and
        record ids absorb. The other order would lose what was not yet sent.

        Straight to the producer, as whole record batches per partition
        (stream/worker/record_batches.py), rather than through ``Topic.send``:
        that wraps every message in a ``FutureMessage``, a pending message and
        sensor callbacks this pipeline does not use, and would attach it to
        the current event, which Faust publishes at the next commit, after the
        state's changelog: the wrong order. Keyed outputs go to the partition
        Kafka's default partitioner picks, as ``producer.send`` did.
        """
        producer = self.user_topic.app.producer
        messages: dict[record_batches.Destination, list[tuple[bytes | None, bytes]]] = defaultdict(list)
        for topic, by_partition in ((self.user_topic, outbox.to_users), (self.account_topic, outbox.to_accounts)):
            name = self._name(topic)
            for partition, envs in by_partition.items():
                messages[name, partition] += [(None, packed) for packed in pack(envs)]
        if outbox.progress:  # after the data it covers, to every partition
            every = orjson.dumps({"progress": outbox.progress})
            direct = {k: v for k, v in outbox.progress.items() if k.startswith("d:")}
            to_users = orjson.dumps({"progress": direct}) if direct else None
            for partition in range(self.partitions):
                messages[self._name(self.account_topic), partition].append((b"\x00progress", every))
                if to_users is not None:
                    messages[self._name(self.user_topic), partition].append((b"\x00progress", to_users))
        now = utc_now_ms()
        for record in outbox.records:
            metrics.CHANGES.labels(record["kind"], record["level"]).inc()
            metrics.EVENT_TO_OUTPUT.observe(max(0.0, (now - parse_timestamp_ms(record["event_time"])) / 1000))
        for alert in outbox.alerts:
            metrics.DRIFT_ALERTS.labels(alert["kind"], alert["status"]).inc()
        for trigger in outbox.triggers:
            metrics.TRIGGERS.labels(trigger["kind"]).inc()
        for topic, outputs in (
            (self.changes_topic, outbox.records),
            (self.alerts_topic, outbox.alerts),
            (self.triggers_topic, outbox.triggers),
        ):
            if outputs:
                name = self._name(topic)
                count = await record_batches.partition_count(producer, name)
                for output in outputs:
                    account = output["account_id"]
                    messages[name, partition_for(account, count)].append((account.encode(), orjson.dumps(output)))
        pending: list[Any] = [record_batches.deliver(producer, messages)] if messages else []
        for d in outbox.dead:
            pending.append(
                await self.dlq.send(d.reason, d.detail, d.value, d.key, d.topic, d.partition, d.offset, d.index)
            )
        for reason, detail, env in outbox.dead_envelopes:
            pending.append(await self.dlq.send_envelope(reason, detail, env))
        awaiting = [p for p in pending if inspect.isawaitable(p)]  # the rest is delivered already
        if awaiting:
            await asyncio.gather(*awaiting)
