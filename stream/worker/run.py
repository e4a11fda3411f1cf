"""Starting a worker: topics, criteria, then the Faust worker loop."""

from __future__ import annotations

import logging

import orjson
from confluent_kafka import Consumer, TopicPartition

from stream.core.criteria import Criteria, load_criteria_text, parse_criteria
from stream.kafka_admin import client_conf, ensure_topics, make_producer
from stream.settings import Settings

log = logging.getLogger("stream.worker")


def published_criteria(settings: Settings, timeout: float = 10.0) -> Criteria | None:
    """The newest valid criteria on the criteria topic (None if there is none)."""
    topic = settings.topics.criteria
    consumer = Consumer(
        {**client_conf(settings), "group.id": f"{settings.app_id}-criteria-probe", "enable.auto.commit": False}
    )
    try:
        tp = TopicPartition(topic, 0)
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        if high <= low:
            return None
        tp.offset = low
        consumer.assign([tp])
        newest: Criteria | None = None
        misses = 0
        while misses < 3:
            msg = consumer.poll(1.0)
            if msg is None:
                misses += 1
                continue
            if msg.error() is not None:
                continue
            try:
                import yaml

                c = parse_criteria(yaml.safe_load(msg.value().decode("utf-8")))
            except Exception:  # any unreadable version is skipped here; the worker DLQs it
                c = None
            if c is not None and (newest is None or c.version > newest.version):
                newest = c
            if msg.offset() >= high - 1:
                misses += 1
        return newest
    finally:
        consumer.close()


def publish_criteria(settings: Settings, criteria: Criteria) -> None:
    producer = make_producer(settings)
    producer.produce(settings.topics.criteria, value=orjson.dumps(dict(criteria.document)), key=b"criteria")
    producer.flush(30)


def prepare(settings: Settings) -> Criteria:
    """Create topics, and make the criteria file's version known to every worker.

    The file wins only if it is newer than what was published on the topic (an
    older file on a restarted worker must not roll criteria back).
    """
    criteria = load_criteria_text(settings.criteria_path.read_text(), str(settings.criteria_path))
    ensure_topics(settings)
    published = published_criteria(settings)
    if published is None or criteria.version > published.version:
        publish_criteria(settings, criteria)
        log.info("published criteria v%d from %s", criteria.version, settings.criteria_path)
        return criteria
    return published


def run_worker(settings: Settings) -> None:
    import faust

    from stream.worker.app import ActivationWorker

    criteria = prepare(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    worker = ActivationWorker(settings, criteria)
    faust.Worker(worker.app, loglevel=settings.log_level.upper()).execute_from_commandline()
