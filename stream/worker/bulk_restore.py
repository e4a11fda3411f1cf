"""Bulk restore: a changelog partition read in batches straight into RocksDB.

Faust restores a table by fetching its changelog through aiokafka and handing
every message, one by one, through its conductor, its recovery loop and the
table (~7k messages/s here: a worker restarted on an empty data dir took two
minutes for 210k keys). This reads the same messages with confluent-kafka's
batch consume (its fetching is native code), keeps the last value of each key
within a chunk, and writes a chunk to the partition's RocksDB in one
``WriteBatch``, Faust's persisted offset included: the offset and the data it
stands for are written atomically, so the partition is consistent after every
chunk, whatever stops the reader (a rebalance, a shutdown, an error, its time
budget) and whoever reads the partition next (Faust's recovery reads from the
persisted offset + 1, exactly as after one of its own batches).

What it writes is what Faust's ``Store.apply_changelog_batch`` would: the
message's key and value bytes as they are (a ``None`` value, a tombstone,
deletes the key; an empty value is stored), the highest offset applied as
``str(offset)`` under Faust's offset key, with the same isolation level as
Faust's consumer outside transactions (read_uncommitted). A partition is done
when the reader has passed the *measured* end (a message at or past it, or
end-of-partition at or past it), never by counting messages, so compacted
changelogs, offset gaps and transaction markers are fine; after end-of-
partition the persisted offset is the end - 1 even when the last offsets were
markers, which Faust's own recovery waits on forever.

The readers run in threads (the event loop keeps heartbeating the consumer
group and serving HTTP; two consumers because the embedded broker serves two
fetches at once faster than one); ``Gate`` is how the loop stops them: once
``close`` returns, no reader writes again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

log = logging.getLogger("stream.recovery")

#: A reader writes its chunks when this many message bytes (keys and values,
#: all its partitions) or messages are buffered: bounds its memory.
FLUSH_BYTES = 32 * 2**20
FLUSH_MESSAGES = 100_000
#: Readers (consumers, threads) of one restore: the embedded broker serves two
#: fetches at once faster than one, more gave nothing (bench/restore.py).
READERS = 2
#: Larger fetches than librdkafka's default (1 MB per partition): 1.7x the
#: messages per second from the embedded broker; the prefetch queue is bounded.
CONSUMER_TUNING = {
    "max.partition.fetch.bytes": 16 * 2**20,
    "fetch.max.bytes": 64 * 2**20,
    "queued.max.messages.kbytes": 64 * 2**10,
}


class Stopped(Exception):
    """The gate was closed: the reader must not write any more."""


class Gate:
    """Serialises the reader's writes against a stop request from the event
    loop: ``close`` waits for a write in progress (one chunk at most) and
    every later write is refused."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = True

    @property
    def is_open(self) -> bool:
        return self._open

    def close(self) -> None:
        with self._lock:
            self._open = False

    def write(self, db: Any, batch: Any) -> None:
        with self._lock:
            if not self._open:
                raise Stopped
            db.write(batch)


@dataclass
class Changelog:
    """One changelog partition to restore into its RocksDB partition."""

    topic: str
    partition: int
    #: first offset to read (Faust's restored offset + 1)
    start: int
    #: the measured end: offsets below it are applied
    end: int
    #: the partition's ``rocksdict.Rdict`` (raw mode), opened by Faust's store
    db: Any
    #: Faust's persisted-offset key in ``db``
    offset_key: bytes
    table: str = ""
    #: highest offset written to ``db`` (``start - 1`` until the first chunk)
    written: int = field(init=False)
    #: highest offset read (written or buffered)
    read: int = field(init=False)
    #: messages read since the last write, and in all
    unwritten: int = 0
    messages: int = 0
    #: messages without a key (Faust cannot apply them either): not written
    keyless: int = 0
    finished: bool = False
    buffer: dict[bytes, bytes | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.written = self.read = self.start - 1

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)


def write_chunk(changelog: Changelog, offset: int, gate: Gate) -> int:
    """Write the buffered messages and ``offset`` as the persisted offset in
    one batch; returns how many messages the chunk covers."""
    from rocksdict import WriteBatch

    batch = WriteBatch(raw_mode=True)
    for key, value in changelog.buffer.items():
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    batch.put(changelog.offset_key, str(offset).encode())
    gate.write(changelog.db, batch)
    covered = changelog.unwritten
    changelog.buffer.clear()
    changelog.unwritten = 0
    changelog.written = offset
    return covered


def restore_changelogs(
    conf: Mapping[str, Any],
    changelogs: list[Changelog],
    gate: Gate,
    deadline: float,
    on_chunk: Callable[[Changelog, int, int], None],
    stall_seconds: float = 15.0,
    readers: int = READERS,
) -> None:
    """Read every changelog from its start to its end into its db, in chunks,
    with ``readers`` consumers in as many threads, the partitions shared out
    by size. ``on_chunk(changelog, offset, messages)`` is called (from a
    reader's thread) after each write. A reader stops early, every chunk read
    so far written, at ``deadline`` (``time.monotonic()``) or when no message
    came for ``stall_seconds``; every reader stops at once, writing nothing
    more, when ``gate`` is closed. Returns when every reader has stopped; the
    first error of a reader is raised then (the others went on)."""
    todo = sorted((c for c in changelogs if c.start < c.end), key=lambda c: c.end - c.start, reverse=True)
    if not todo:
        return
    groups: list[list[Changelog]] = [[] for _ in range(max(1, min(readers, len(todo))))]
    for c in todo:  # the largest first, each to the least loaded reader
        min(groups, key=lambda g: sum(x.end - x.start for x in g)).append(c)
    errors: list[BaseException] = []

    def run(group: list[Changelog]) -> None:
        try:
            _read(conf, group, gate, deadline, on_chunk, stall_seconds)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(g,), name="bulk-restore", daemon=True) for g in groups[1:]]
    for t in threads:
        t.start()
    run(groups[0])
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _read(
    conf: Mapping[str, Any],
    changelogs: list[Changelog],
    gate: Gate,
    deadline: float,
    on_chunk: Callable[[Changelog, int, int], None],
    stall_seconds: float,
) -> None:
    """One reader: one consumer over ``changelogs``."""
    todo = {c.key: c for c in changelogs}
    consumer = Consumer(
        {
            **conf,
            "group.id": "stream-bulk-restore",  # assign() only: never joins the group nor commits
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_uncommitted",
            **CONSUMER_TUNING,
        }
    )
    buffered_bytes = buffered = 0
    errors_seen: set[str] = set()

    def flush_all() -> None:
        nonlocal buffered_bytes, buffered
        for c in todo.values():
            if c.read > c.written:
                on_chunk(c, c.read, write_chunk(c, c.read, gate))
        buffered_bytes = buffered = 0

    def finish(c: Changelog) -> None:
        # everything below the end has been read: the end - 1 is restored,
        # whether or not a message (rather than a marker or a gap) was there
        c.read = c.end - 1
        on_chunk(c, c.read, write_chunk(c, c.read, gate))
        c.finished = True
        del todo[c.key]
        consumer.pause([TopicPartition(c.topic, c.partition)])

    try:
        consumer.assign([TopicPartition(c.topic, c.partition, c.start) for c in todo.values()])
        last_message = time.monotonic()
        while todo:
            if not gate.is_open:
                return
            now = time.monotonic()
            if now > deadline or now - last_message > stall_seconds:
                left = {f"{t}[{p}]": c.end - 1 - c.read for (t, p), c in todo.items()}
                reason = "its time budget ran out" if now > deadline else f"no message for {stall_seconds:.0f}s"
                log.warning("Bulk restore stopped, %s; messages left to Faust's recovery: %s", reason, left)
                flush_all()
                return
            messages = consumer.consume(10_000, 0.2)
            if messages:
                last_message = time.monotonic()
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        c = todo.get((msg.topic(), msg.partition()))
                        if c is not None and msg.offset() >= c.end:
                            finish(c)
                    elif err.fatal():
                        raise KafkaException(err)
                    elif str(err) not in errors_seen:  # librdkafka retries by itself
                        errors_seen.add(str(err))
                        log.warning("Bulk restore: %s", err)
                    continue
                c = todo.get((msg.topic(), msg.partition()))
                if c is None:
                    continue  # finished (paused, but already fetched)
                offset = msg.offset()
                if offset >= c.end:
                    finish(c)  # not applied: Faust's recovery will be past the measured end
                    continue
                key = msg.key()
                if key is None:
                    c.keyless += 1
                else:
                    value = msg.value()
                    c.buffer[key] = value
                    buffered_bytes += len(key) + (len(value) if value is not None else 0)
                c.read = offset
                c.unwritten += 1
                c.messages += 1
                buffered += 1
                if offset == c.end - 1:
                    finish(c)
                elif buffered >= FLUSH_MESSAGES or buffered_bytes >= FLUSH_BYTES:
                    flush_all()
    except Stopped:
        return
    finally:
        consumer.close()
        for c in changelogs:
            if c.keyless:
                log.warning("Bulk restore: %s[%d]: %d messages without a key skipped", c.topic, c.partition, c.keyless)
