"""The first hop's input: the events topic, read with confluent-kafka.

Why not Faust's consumer, like the other hops: producers' single-call messages
arrive one call per message, and Faust's per-message path (its consumer thread
parsing fetches in Python, the hand-over to the agent's queue, the stream's
per-event acknowledgement) cost about as much as decoding and routing the call.
librdkafka fetches and parses in its own threads, without the GIL, and hands
over a list of messages per call. Measured on the benchmark's single-call
workload, back to back: see the README's levers.

The internal topics stay on Faust: their messages are packed (hundreds of
calls each), and their agents' state is in Faust's tables, whose partitions
must follow the topics' assignment.

One thread owns the consumer: every call on it is made there (consume,
commit, seek, pause, the rebalance callbacks). The event loop gets, in order,
through ``deliver``: :class:`Assigned` (where reading resumes, and each lane's
running maximum there), :class:`Revoked`, and :class:`Batch` (messages). At
most ``max_batches`` batches are out at once; while they are, the thread
pauses its partitions and goes on calling ``consume`` (which only serves the
group protocol then), so however long a batch takes the worker stays in the
group. Offsets are committed by the thread once the loop says a batch is done:
its outputs and its lane record are on the broker.

A lane's running maximum (the newest event time read from the partition, which
every routed call carries) must resume exactly where reading resumes. It is
kept in a compacted topic, one record per batch and input partition: the
partition's history of ``[next offset, running maximum]`` pairs (see
:func:`stream.core.clock.record_lane_max`). The committed offset may lag the
last record (a kill between the two), so the history answers for any offset.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from stream.core.clock import lane_max_before
from stream.worker import metrics

log = logging.getLogger("stream.worker.input")

#: librdkafka's "no offset" (nothing committed)
NO_OFFSET = -1001
#: librdkafka's logical "the partition's first offset"
OFFSET_BEGINNING = -2
#: how often the thread measures its partitions' lag (a gauge)
LAG_EVERY_S = 2.0


class ConsumerLike(Protocol):
    """What the reader uses of ``confluent_kafka.Consumer`` (a fake in the tests)."""

    def subscribe(self, topics: list[str], on_assign: Any = ..., on_revoke: Any = ...) -> None: ...
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...
    def assign(self, partitions: list[Any]) -> None: ...
    def committed(self, partitions: list[Any], timeout: float = ...) -> list[Any]: ...
    def commit(self, offsets: list[Any] = ..., asynchronous: bool = ...) -> Any: ...
    def pause(self, partitions: list[Any]) -> None: ...
    def resume(self, partitions: list[Any]) -> None: ...
    def assignment(self) -> list[Any]: ...
    def seek(self, partition: Any) -> None: ...
    def position(self, partitions: list[Any]) -> list[Any]: ...
    def get_watermark_offsets(self, partition: Any, timeout: float = ..., cached: bool = ...) -> tuple[int, int]: ...
    def close(self) -> None: ...


class InputEvent:
    """One input message, in the shape the first hop reads (Faust's event:
    ``.value`` and ``.message`` with topic, partition, offset, timestamp in
    seconds, key)."""

    __slots__ = ("key", "message", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: float | None, key: Any, value: Any) -> None:
        self.message = self
        self.topic, self.partition, self.offset = topic, partition, offset
        self.timestamp, self.key, self.value = timestamp, key, value

    @classmethod
    def of(cls, m: Any) -> InputEvent:
        kind, ts = m.timestamp()
        return cls(m.topic(), m.partition(), m.offset(), ts / 1000 if kind and ts > 0 else None, m.key(), m.value())


@dataclass(frozen=True, slots=True)
class Assigned:
    """Partitions now read: for each, its lane history and the running
    maximum where reading resumes. ``epoch``: the loop's rewind count it answers."""

    lanes: dict[int, tuple[list[list[int]], int]]
    epoch: int


@dataclass(frozen=True, slots=True)
class Revoked:
    partitions: tuple[int, ...]


@dataclass(slots=True)
class Batch:
    events: list[InputEvent] = field(default_factory=list)
    epoch: int = 0


def history_of(raw: bytes | None) -> list[list[int]]:
    """A lane record's history; anything unreadable counts as none (the lane
    then resumes from 0, which only makes its first calls less likely late)."""
    if not raw:
        return []
    try:
        history = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(history, list) or not all(isinstance(h, list) and len(h) == 2 for h in history):
        return []
    return history


class InputReader:
    """The consumer's thread (see the module's docstring)."""

    def __init__(
        self,
        consumer: ConsumerLike,
        topic: str,
        read_lanes: Callable[[Sequence[int]], dict[int, bytes | None]],
        make_partition: Callable[[str, int, int], Any],
        *,
        batch_max: int,
        wait_s: float,
        max_batches: int = 2,
        fallback_offsets: Callable[[Sequence[int]], dict[int, int]] | None = None,
        revoke_wait_s: float = 10.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.read_lanes = read_lanes
        self.make_partition = make_partition
        self.batch_max, self.wait_s = batch_max, wait_s
        self.fallback_offsets = fallback_offsets
        self.max_batches = max_batches
        #: batches handed over and not done yet (at most ``max_batches``; a revocation waits for them)
        self._out = 0
        self._out_changed = threading.Condition()
        self.revoke_wait_s = revoke_wait_s
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        #: set by :meth:`stop`; also ends the Kafka helpers' retries (``read_lanes``, ``fallback_offsets``)
        self._stop = stop or threading.Event()
        self._epoch = 0
        self._paused = False
        self._deliver: Callable[[object], None] = lambda _item: None
        self._thread: threading.Thread | None = None
        self._lag_due = 0.0
        #: fetched, not handed over yet (the loop has ``max_batches`` out)
        self._waiting: Batch | None = None
        #: input partition -> messages not yet committed, at the last measure
        self.lag: dict[int, int] = {}
        #: set once the group first gave this reader its partitions (maybe none)
        self.joined = False
        #: input partition -> the offset read next, and the one last committed
        self._next: dict[int, int] = {}
        self._committed: dict[int, int] = {}

    # ------------------------------------------------ called from the loop

    def start(self, deliver: Callable[[object], None]) -> None:
        """``deliver`` is called on the reader's thread, in order."""
        self._deliver = deliver
        self._thread = threading.Thread(target=self._run, name="input-reader", daemon=True)
        self._thread.start()

    def done(self, commits: dict[int, int]) -> None:
        """A batch is on the broker: commit ``{partition: next offset}``."""
        if commits:
            self._commands.put(("commit", commits))
        self._batch_done()

    def rewind(self, epoch: int) -> None:
        """A batch failed: read again from the committed offsets; batches
        handed over before are dropped by the loop (they carry an older epoch)."""
        self._commands.put(("rewind", epoch))
        self._batch_done()

    def _batch_done(self) -> None:
        with self._out_changed:
            self._out -= 1
            self._out_changed.notify_all()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------ the reader's thread

    def _run(self) -> None:
        try:
            self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            while not self._stop.is_set():
                self._run_commands()
                if self._waiting is not None and self._take_slot():
                    self._deliver(self._waiting)
                    self._waiting = None
                self._pause(self._waiting is not None)
                got = self.consume()
                if got:
                    if self._waiting is None:
                        self._waiting = Batch(got, self._epoch)
                    else:  # fetched before the pause took effect
                        self._waiting.events += got
        except Exception as exc:  # never silently: the loop waits for batches that would never come
            log.exception("the input reader stopped: %r", exc)
            self._deliver(exc)
        finally:
            try:
                self.consumer.close()
            except Exception as exc:
                log.warning("closing the input consumer: %r", exc)

    def _take_slot(self) -> bool:
        with self._out_changed:
            if self._out >= self.max_batches:
                return False
            self._out += 1
            return True

    def consume(self) -> list[InputEvent]:
        now = time.monotonic()
        if now >= self._lag_due:
            self._lag_due = now + LAG_EVERY_S
            self._measure_lag()
        events: list[InputEvent] = []
        expected = self._next
        for m in self.consumer.consume(self.batch_max, self.wait_s):
            err = m.error()
            if err is not None:
                if not _is_eof(err):
                    log.warning("input consumer: %s", err)
                continue
            p, offset = m.partition(), m.offset()
            want = expected.get(p)
            if want is not None and offset != want:
                if offset < want:  # fetched before a seek: it comes again in order
                    continue
                # a hole (a transaction marker, a compacted topic): never skipped silently
                metrics.OFFSET_GAPS.labels(self.topic).inc()
                log.warning("offsets skipped on %s[%d]: expected %d, got %d", self.topic, p, want, offset)
            expected[p] = offset + 1
            events.append(InputEvent.of(m))
        return events

    def _measure_lag(self) -> None:
        lag: dict[int, int] = {}
        try:
            for tp in self.consumer.assignment():
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                lag[tp.partition] = max(0, high - self._committed.get(tp.partition, low))
        except Exception as exc:  # a gauge: never stop reading for it
            log.debug("input lag not measured: %r", exc)
            return
        self.lag = lag

    def _pause(self, pause: bool) -> None:
        if pause != self._paused:
            parts = self.consumer.assignment()
            if parts:
                (self.consumer.pause if pause else self.consumer.resume)(parts)
            self._paused = pause

    def _run_commands(self) -> None:
        while True:
            try:
                command, arg = self._commands.get_nowait()
            except queue.Empty:
                return
            if command == "commit":
                self._commit(arg)
            elif command == "rewind":
                self._epoch = arg
                self._waiting = None  # read again from the committed offsets
                self._resume_at_committed(self.consumer.assignment(), self.consumer.seek)

    def _commit(self, commits: dict[int, int]) -> None:
        offsets = [self.make_partition(self.topic, p, offset) for p, offset in sorted(commits.items())]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:  # e.g. the partitions moved: their new owner reads them again
            metrics.INPUT_COMMIT_FAILURES.inc()
            log.warning("input offsets not committed (%r): they will be read again", exc)
            return
        self._committed.update(commits)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self._resume_at_committed(partitions, None)
        self.joined = True

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        """Before the partitions go: forget what was fetched of them and not
        handed over, and wait (committing) until the batches handed over are
        done, as Faust waits for its agents. A batch finishing after the new
        owner began would write a lane record older than the new owner's."""
        revoked = {tp.partition for tp in partitions}
        if self._waiting is not None:
            self._waiting.events = [e for e in self._waiting.events if e.partition not in revoked]
            if not self._waiting.events:
                self._waiting = None
        deadline = time.monotonic() + self.revoke_wait_s
        while True:
            self._run_commands()
            with self._out_changed:
                if self._out <= 0 or time.monotonic() > deadline or self._stop.is_set():
                    left = self._out
                    break
                self._out_changed.wait(0.05)
        self._run_commands()  # the last batch's commit
        if left > 0:
            log.warning("%d input batch(es) still running as partitions %s are revoked", left, sorted(revoked))
        self._paused = False  # a new assignment starts unpaused
        for tp in partitions:
            self._next.pop(tp.partition, None)
        self._deliver(Revoked(tuple(tp.partition for tp in partitions)))

    def _resume_at_committed(self, partitions: list[Any], seek: Callable[[Any], None] | None) -> None:
        """Start (on assignment) or restart (``seek``: after a failed batch)
        each partition at its committed offset, and tell the loop each lane's
        running maximum there."""
        if not partitions:
            return
        numbers = [tp.partition for tp in partitions]
        committed = _retrying("committed offsets", lambda: self.consumer.committed(partitions, timeout=30), self._stop)
        starts = {tp.partition: tp.offset for tp in committed}
        missing = [p for p in numbers if starts.get(p, NO_OFFSET) < 0]
        if missing and self.fallback_offsets is not None:
            starts.update(self.fallback_offsets(missing))
        raw = self.read_lanes(numbers)
        lanes: dict[int, tuple[list[list[int]], int]] = {}
        at: list[Any] = []
        for p in numbers:
            history = history_of(raw.get(p))
            start = starts.get(p, NO_OFFSET)
            if start >= 0:
                lanes[p] = (history, lane_max_before(history, start))
                self._next[p] = self._committed[p] = start
            else:  # from the partition's start, wherever retention has put it
                lanes[p] = (history, 0)
                self._next.pop(p, None)
                self._committed.pop(p, None)
            at.append(self.make_partition(self.topic, p, max(start, OFFSET_BEGINNING)))
        if seek is None:
            self.consumer.assign(at)
            self._paused = False
        else:
            for tp in at:
                seek(tp)
        log.info("input partitions %s resume at %s", numbers, {p: starts.get(p) for p in numbers})
        self._deliver(Assigned(lanes, self._epoch))


def _is_eof(err: Any) -> bool:
    from confluent_kafka import KafkaError

    return bool(err.code() == KafkaError._PARTITION_EOF)


# ---------------------------------------------------------------- on Kafka


def _retrying(what: str, fn: Callable[[], Any], stop: threading.Event, seconds: float = 120.0) -> Any:
    """``fn()``, retried while the broker does not answer (a paused or
    restarting broker must not stop the worker), for up to ``seconds``."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except KafkaException as exc:
            if time.monotonic() > deadline or stop.is_set():
                raise
            log.warning("%s: %r, retrying", what, exc)
            time.sleep(0.5)


def lane_records(
    conf: dict[str, Any], topic: str, stop: threading.Event
) -> Callable[[Sequence[int]], dict[int, bytes | None]]:
    """Reads the newest record of each given partition of the lanes topic."""
    from stream.kafka_admin import last_values

    def read(partitions: Sequence[int]) -> dict[int, bytes | None]:
        return _retrying("lanes topic", lambda: last_values(conf, topic, partitions), stop)  # type: ignore[no-any-return]

    return read


def group_offsets(
    conf: dict[str, Any], group: str, topic: str, stop: threading.Event
) -> Callable[[Sequence[int]], dict[int, int]]:
    """Offsets another group committed (the Faust group that read the input
    before this reader existed): where a partition with no commit of its own
    resumes, instead of the topic's start."""
    from confluent_kafka import Consumer, TopicPartition

    def read(partitions: Sequence[int]) -> dict[int, int]:
        consumer = Consumer({**conf, "group.id": group, "enable.auto.commit": False})  # never subscribes
        try:
            got = _retrying(
                "committed offsets",
                lambda: consumer.committed([TopicPartition(topic, p) for p in partitions], 30),
                stop,
            )
            return {tp.partition: tp.offset for tp in got if tp.offset >= 0}
        finally:
            consumer.close()

    return read
