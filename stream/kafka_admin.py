"""Topic creation and small producer/consumer helpers on confluent-kafka."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream.settings import Settings


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
        settings.account_topic: n,
        settings.user_topic: n,
    }


def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create missing topics (existing ones are left as they are)."""
    admin = AdminClient(client_conf(settings))
    deadline = time.monotonic() + timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    wanted = [
        NewTopic(name, num_partitions=parts, replication_factor=settings.replication_factor)
        for name, parts in topic_plan(settings).items()
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


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """The next offset to be written per partition, measured, not trusted.

    Some brokers (the embedded one among them) report a high watermark below
    the real end of the log; reading the tail finds the true end.
    """
    consumer = Consumer({**client_conf(settings), "group.id": "stream-end-probe", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        out: dict[int, int] = {}
        for p in meta.partitions:
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            out[p] = high
        return out
    finally:
        consumer.close()


def consume_all(settings: Settings, topic: str, idle_seconds: float = 2.0, timeout: float = 60.0) -> Iterator[object]:
    """Read a topic from the beginning until nothing new arrives for ``idle_seconds``."""
    consumer = Consumer(
        {
            **client_conf(settings),
            "group.id": f"stream-reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = consumer.consume(1000, 0.2)
            if not msgs:
                if time.monotonic() - idle_since > idle_seconds:
                    return
                continue
            idle_since = time.monotonic()
            for m in msgs:
                if m.error() is None:
                    yield m
    finally:
        consumer.close()
