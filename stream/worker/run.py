"""Starting a worker: topics, criteria, then the Faust worker loop."""

from __future__ import annotations

import logging
from dataclasses import replace

import orjson

from stream.core.criteria import Criteria, load_criteria_bytes, load_criteria_text
from stream.core.errors import CriteriaError
from stream.kafka_admin import ensure_topics, make_producer, partition_count, read_topic
from stream.settings import Settings

log = logging.getLogger("stream.worker")


def published_criteria(settings: Settings) -> Criteria | None:
    """The newest valid criteria on the criteria topic (None if there is none);
    invalid versions are skipped here (the worker sends them to the DLQ)."""
    newest: Criteria | None = None
    for msg in read_topic(settings, settings.topics.criteria):
        try:
            criteria = load_criteria_bytes(msg.value() or b"")
        except CriteriaError:
            continue
        if newest is None or criteria.version > newest.version:
            newest = criteria
    return newest


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


def use_uvloop() -> bool:
    """uvloop's event loop when it is installed: Faust spends much of its time
    in the loop's own machinery (handles, futures, selectors)."""
    try:
        import uvloop
    except ImportError:
        return False
    import asyncio

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


def run_worker(settings: Settings) -> None:
    import faust

    from stream.worker.app import ActivationWorker

    criteria = prepare(settings)
    # each input partition is a lane the event-time watermark waits for
    settings = replace(settings, input_partitions=partition_count(settings, settings.topics.events))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    use_uvloop()  # the GC thresholds are set by the command line (stream.cli.main), for every command
    worker = ActivationWorker(settings, criteria)
    faust.Worker(worker.app, loglevel=settings.log_level.upper()).execute_from_commandline()
