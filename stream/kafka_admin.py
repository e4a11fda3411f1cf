"""Topic creation and small producer/consumer helpers on confluent-kafka."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream.settings import Settings

log = logging.getLogger("stream.kafka")
PartitionKey = tuple[str, int]


def client_conf(settings: Settings) -> dict[str, str]:
    return {"bootstrap.servers": settings.bootstrap_servers, **settings.security.confluent()}


def topic_plan(settings: Settings) -> dict[str, int]:
    """Every topic the workers read or write, with its partition count.

    The criteria topic has one partition: versions must be read in order.
    """
    n = settings.partitions
    t = settings.topics
    return {
        t.events: n,
        t.criteria: 1,
        t.changes: n,
        t.dlq: n,
        t.triggers: n,
        t.alerts: n,
        settings.account_topic: n,
        settings.user_topic: n,
        # one partition per input partition (as many as the events topic has)
        settings.lanes_topic: settings.input_partitions or n,
    }


def _topic_config(settings: Settings, name: str) -> dict[str, str]:
    return {"cleanup.policy": "compact"} if name == settings.lanes_topic else {}


def partition_count(settings: Settings, topic: str, timeout: float = 10.0) -> int | None:
    """Partitions of an existing topic (None if it does not exist)."""
    admin = AdminClient(client_conf(settings))
    meta = admin.list_topics(topic=topic, timeout=timeout).topics.get(topic)
    if meta is None or meta.error is not None:
        return None
    return len(meta.partitions)


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create missing topics (existing ones are left as they are)."""
    admin = AdminClient(client_conf(settings))
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = admin.list_topics(timeout=5).topics
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    plan = topic_plan(settings)
    events = existing.get(settings.topics.events)
    if events is not None and events.partitions:  # an input topic made elsewhere: one lane each
        plan[settings.lanes_topic] = len(events.partitions)
    wanted = [
        NewTopic(
            name,
            num_partitions=parts,
            replication_factor=settings.replication_factor,
            config=_topic_config(settings, name),
        )
        for name, parts in plan.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RuntimeError(f"cannot create topic {name}: {exc}") from exc


def make_producer(settings: Settings, **extra: str | int) -> Producer:
    conf: dict[str, str | int] = {"linger.ms": 5, "compression.type": "none", **client_conf(settings)}
    conf.update(extra)
    return Producer(conf)


def produce_all(settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Publish (key, value) pairs and wait until the broker has them all."""
    producer = make_producer(settings)
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    count = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        if count % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    if errors:
        raise RuntimeError(f"{len(errors)} messages not delivered, first: {errors[0]}")
    return count


def measured_end_offsets(
    conf: Mapping[str, Any], reported: Mapping[PartitionKey, int], timeout: float = 30.0
) -> dict[PartitionKey, int]:
    """The true next offset of each partition, starting from a reported one.

    ``reported`` values are what ListOffsets said (0 or less: empty). Reads from
    one before the reported end (the start of the last batch, when the report
    is low) until end-of-partition, keeping the highest offset seen.

    The fetches use librdkafka's default wait (500 ms): the embedded broker
    answers a fetch on a large partition (tens of thousands of messages) only
    after tens of milliseconds, and with a shorter wait it answered empty every
    time, so neither a message nor end-of-partition ever came and the reported
    (low) end was kept: a restore then silently missed the changelog's tail.
    """
    ends, _last, pending = read_tails(conf, reported, timeout)
    if pending:
        log.warning("no end-of-partition within %.0fs for %s; using the highest offset seen", timeout, pending)
    return ends


def read_tails(
    conf: Mapping[str, Any], reported: Mapping[PartitionKey, int], timeout: float = 30.0
) -> tuple[dict[PartitionKey, int], dict[PartitionKey, bytes | None], set[PartitionKey]]:
    """Each partition read from one before its reported end to end-of-partition
    (see :func:`measured_end_offsets`): its measured end, its last message's
    value (partitions with a message only), and the partitions whose end did
    not come within ``timeout``."""
    ends = dict(reported)
    last: dict[PartitionKey, bytes | None] = {}
    todo = {k: v for k, v in reported.items() if v > 0}
    if not todo:
        return ends, last, set()
    consumer = Consumer(
        {
            **conf,
            "group.id": "stream-changelog-end-probe",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(t, p, end - 1) for (t, p), end in todo.items()])
        pending = set(todo)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            key = (msg.topic(), msg.partition())
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    ends[key] = max(ends[key], msg.offset())
                    pending.discard(key)
                continue
            if msg.offset() + 1 >= ends[key]:
                ends[key] = msg.offset() + 1
                last[key] = msg.value()
    finally:
        consumer.close()
    return ends, last, pending


def _watermarks(
    conf: Mapping[str, Any], topic: str, partitions: Iterable[int] | None, group: str
) -> dict[PartitionKey, tuple[int, int]]:
    """Each partition's reported (low, high) offsets: the given ones, or all of the topic's."""
    consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        if partitions is None:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return {(topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
    finally:
        consumer.close()


def last_values(conf: Mapping[str, Any], topic: str, partitions: Iterable[int]) -> dict[int, bytes | None]:
    """The value of the newest message of each given partition that has one
    (its end measured, as :func:`measured_end_offsets` does)."""
    marks = _watermarks(conf, topic, partitions, "stream-end-probe")
    reported = {key: high if high > low else 0 for key, (low, high) in marks.items()}
    _ends, last, pending = read_tails(conf, reported, timeout=60.0)
    if pending:
        raise RuntimeError(f"{topic}: partitions {sorted(p for _t, p in pending)} not read to their end")
    return {p: value for (_t, p), value in last.items()}


def topic_end_offsets(conf: Mapping[str, Any], topic: str, group: str = "stream-end-probe") -> dict[PartitionKey, int]:
    """The measured end of every partition of a topic (see :func:`measured_end_offsets`)."""
    reported = {key: high for key, (_low, high) in _watermarks(conf, topic, None, group).items()}
    return measured_end_offsets(conf, reported)


def read_topic(settings: Settings, topic: str) -> Iterator[Message]:
    """Every message of a topic from the start to its measured end, partition by
    partition (the end is measured, not taken from a possibly under-reported
    high watermark)."""
    conf = client_conf(settings)
    ends = topic_end_offsets(conf, topic, f"{settings.app_id}-reader")
    consumer = Consumer({**conf, "group.id": f"{settings.app_id}-reader", "enable.auto.commit": False})
    try:
        for (t, p), end in sorted(ends.items()):
            if end <= 0:
                continue
            consumer.assign([TopicPartition(t, p, 0)])
            while True:
                msg = consumer.poll(5.0)
                if msg is None:
                    raise RuntimeError(f"{t}[{p}]: no message before offset {end}")
                if msg.error() is not None:
                    continue
                yield msg
                if msg.offset() >= end - 1:
                    break
    finally:
        consumer.close()
