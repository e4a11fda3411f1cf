"""The first hop (input topic, keyed however producers chose): decode Segment
calls, DLQ the bad ones, re-key the good ones by account (or by user when the
call names no account).

A mixin of :class:`stream.worker.app.ActivationWorker`, run as an app task
over :class:`~stream.worker.input_reader.InputReader` (confluent-kafka; the
module says why). A batch's outputs go out, then its lane records, then its
offsets are committed: a worker killed in between reads the batch again, and
the accounts' applied offsets and the records' ids absorb what it re-sends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

import orjson

from stream.core.clock import record_lane_max
from stream.core.routing import TO_ACCOUNT, direct_lane, route_call
from stream.core.segment import Rejection, decode_message
from stream.worker import metrics
from stream.worker.batching import DeadLetter, Outbox
from stream.worker.input_reader import (
    Assigned,
    Batch,
    InputEvent,
    InputReader,
    Revoked,
    group_offsets,
    lane_records,
)

if TYPE_CHECKING:
    import faust

    from stream.settings import Settings
    from stream.worker.publisher import Publisher

log = logging.getLogger("stream.worker.ingest")

#: The first hop sends what it has decoded once it holds this many calls (a
#: batch of Segment batch envelopes can hold a hundred times more calls than
#: messages), and again at the end of its batch.
INGEST_FLUSH_CALLS = 20_000


class IngestHop:
    settings: Settings
    app: faust.App
    publisher: Publisher
    #: (topic, partition) -> highest event time the first hop decoded from it
    input_lane_max: dict[tuple[str, int], int]
    input_reader: InputReader | None
    _failed: Any

    def make_input_reader(self, stop: threading.Event) -> InputReader:
        from confluent_kafka import Consumer, TopicPartition

        from stream.kafka_admin import client_conf

        settings = self.settings
        conf: dict[str, Any] = client_conf(settings)
        group = settings.group
        consumer = Consumer(
            {
                **conf,
                "group.id": settings.ingest_group,
                "client.id": f"{settings.app_id}-ingest",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": int(group.session_timeout_s * 1000),
                "heartbeat.interval.ms": int(group.heartbeat_interval_s * 1000),
                "max.poll.interval.ms": int(max(group.rebalance_timeout_s, group.session_timeout_s) * 1000),
                "fetch.wait.max.ms": settings.fetch_wait_ms,
            }
        )
        return InputReader(
            consumer,
            settings.topics.events,
            lane_records(conf, settings.lanes_topic, stop),
            TopicPartition,
            batch_max=settings.batch_max,
            wait_s=settings.batch_wait_ms / 1000,
            fallback_offsets=group_offsets(conf, settings.app_id, settings.topics.events, stop),
            revoke_wait_s=max(1.0, group.rebalance_timeout_s / 2),  # inside consume: under max.poll.interval.ms
            stop=stop,
        )

    async def ingest_task(self) -> None:
        """Reads the input for as long as the worker runs."""
        reader = self.input_reader = self.make_input_reader(threading.Event())
        items: asyncio.Queue[object] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        reader.start(lambda item: loop.call_soon_threadsafe(items.put_nowait, item))
        #: lane histories of the partitions read, and the rewinds asked for
        histories: dict[int, list[list[int]]] = {}
        epoch = 0
        topic = self.settings.topics.events
        try:
            while True:
                item = await items.get()
                if isinstance(item, Assigned):
                    metrics.REBALANCES.labels("input").inc()
                    for p, (history, lane_max) in item.lanes.items():
                        histories[p] = history
                        self.input_lane_max[(topic, p)] = lane_max
                elif isinstance(item, Revoked):
                    for p in item.partitions:
                        histories.pop(p, None)
                        self.input_lane_max.pop((topic, p), None)
                elif isinstance(item, Batch):
                    if item.epoch != epoch or not item.events:
                        reader.done({})  # read before a rewind: read again after it
                        continue
                    try:
                        reader.done(await self._ingest_batch(item.events, histories))
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # the broker did not take the outputs: read them again
                        log.error("input batch failed, reading it again: %r", exc, exc_info=exc)
                        epoch += 1
                        reader.rewind(epoch)
                        await asyncio.sleep(1.0)
                elif isinstance(item, BaseException):
                    raise RuntimeError("the input reader stopped") from item
        finally:
            await loop.run_in_executor(None, reader.stop)

    async def _ingest_batch(self, events: list[InputEvent], histories: dict[int, list[list[int]]]) -> dict[int, int]:
        """Route one batch; its offsets to commit, once all it produced is on the broker."""
        outbox = Outbox(self.settings.partitions)
        last: dict[int, InputEvent] = {}
        for event in events:
            last[event.partition] = event
            try:
                self._ingest_one(event, outbox)
            except Exception as exc:
                self._failed(outbox, event, exc)
            if outbox.calls >= INGEST_FLUSH_CALLS:  # Segment batches: bound what a batch holds
                await self.publisher.send(outbox)
                outbox = Outbox(self.settings.partitions)
        await self.publisher.send(outbox)
        # after the data it covers, like every state; before the commit
        producer, lanes = self.app.producer, self.settings.lanes_topic
        pending = []
        commits: dict[int, int] = {}
        for p, event in last.items():
            next_offset = commits[p] = event.offset + 1
            history = histories[p] = record_lane_max(
                histories.get(p, []), next_offset, self.input_lane_max.get((event.topic, p), 0)
            )
            key = direct_lane(event.topic, p).encode()
            pending.append(
                await producer.send(lanes, key, orjson.dumps(history), partition=p, timestamp=None, headers=None)
            )
        await asyncio.gather(*pending)
        return commits

    def _ingest_one(self, event: InputEvent, outbox: Outbox) -> None:
        broker_ts = int(event.timestamp * 1000) if event.timestamp else None
        source = (event.topic, event.partition)
        for item in decode_message(event.value, broker_timestamp_ms=broker_ts, limits=self.settings.decode):
            if isinstance(item, Rejection):
                outbox.dead.append(
                    DeadLetter(
                        item.reason,
                        item.detail,
                        item.raw,
                        event.key,
                        event.topic,
                        event.partition,
                        event.offset,
                        item.index,
                    )
                )
                continue
            metrics.counter_of(metrics.EVENTS, item.type).inc()
            top = self.input_lane_max[source] = max(self.input_lane_max.get(source, 0), item.timestamp_ms)
            outbox.advance(direct_lane(event.topic, event.partition), top)
            for target, env in route_call(item, event.topic, event.partition, event.offset, top):
                if target == TO_ACCOUNT:
                    outbox.to_account(env)
                else:
                    outbox.to_user(env)
