"""The input reader's thread, around a scripted consumer (no broker)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from stream.core.clock import record_lane_max
from stream.worker import metrics
from stream.worker.input_reader import OFFSET_BEGINNING, Assigned, Batch, InputReader, Revoked, history_of

TOPIC = "product-events"
WAIT = 10.0  # seconds a test waits for the reader's thread to deliver (it normally takes milliseconds)


@dataclass
class TP:
    topic: str
    partition: int
    offset: int = -1001


class FakeMessage:
    def __init__(self, partition: int, offset: int) -> None:
        self._p, self._o = partition, offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"{}"


class ScriptedConsumer:
    """A consumer whose group assigns ``partitions`` at the first consume and
    whose partitions hold ``messages`` from the offsets it is told to read at."""

    def __init__(self, partitions: list[int], committed: dict[int, int], ends: dict[int, int]) -> None:
        self.lock = threading.Lock()
        self.partitions, self.committed_offsets, self.ends = partitions, committed, ends
        self.position_of: dict[int, int] = {}
        self.paused: set[int] = set()
        self.commits: list[list[tuple[int, int]]] = []
        self.seeks: list[tuple[int, int]] = []
        self.on_assign: Any = None
        self.on_revoke: Any = None
        self.assigned_once = False
        self.revoke_next = False
        self.closed = False
        self.fail_next: Exception | None = None

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None) -> None:
        self.on_assign, self.on_revoke = on_assign, on_revoke

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        if self.fail_next is not None:
            raise self.fail_next
        if not self.assigned_once:
            self.assigned_once = True
            self.on_assign(self, [TP(TOPIC, p) for p in self.partitions])
        if self.revoke_next:
            self.revoke_next = False
            self.on_revoke(self, [TP(TOPIC, p) for p in sorted(self.position_of)])
            self.position_of.clear()
            return []
        out: list[Any] = []
        with self.lock:
            for p, at in sorted(self.position_of.items()):
                if p in self.paused:
                    continue
                upto = min(self.ends[p], at + num_messages - len(out))
                out += [FakeMessage(p, o) for o in range(at, upto)]
                self.position_of[p] = upto
        if not out:
            threading.Event().wait(min(timeout, 0.01))  # what a real consume's wait would be
        return out

    def assign(self, partitions: list[TP]) -> None:
        for tp in partitions:
            self.position_of[tp.partition] = 0 if tp.offset == OFFSET_BEGINNING else tp.offset

    def committed(self, partitions: list[TP], timeout: float = -1) -> list[TP]:
        return [TP(TOPIC, tp.partition, self.committed_offsets.get(tp.partition, -1001)) for tp in partitions]

    def commit(self, offsets: list[TP], asynchronous: bool = True) -> None:
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])
        for tp in offsets:
            self.committed_offsets[tp.partition] = tp.offset

    def pause(self, partitions: list[TP]) -> None:
        self.paused |= {tp.partition for tp in partitions}

    def resume(self, partitions: list[TP]) -> None:
        self.paused -= {tp.partition for tp in partitions}

    def assignment(self) -> list[TP]:
        return [TP(TOPIC, p) for p in sorted(self.position_of)]

    def seek(self, tp: TP) -> None:
        self.seeks.append((tp.partition, tp.offset))
        with self.lock:
            self.position_of[tp.partition] = tp.offset

    def position(self, partitions: list[TP]) -> list[TP]:
        return [TP(TOPIC, tp.partition, self.position_of.get(tp.partition, -1001)) for tp in partitions]

    def get_watermark_offsets(self, tp: TP, timeout: float = -1, cached: bool = False) -> tuple[int, int]:
        return (0, self.ends[tp.partition])

    def close(self) -> None:
        self.closed = True


def make_partition(topic: str, partition: int, offset: int) -> TP:
    return TP(topic, partition, offset)


def start(
    consumer: ScriptedConsumer,
    lanes: dict[int, bytes] | None = None,
    fallback: dict[int, int] | None = None,
    max_batches: int = 2,
    batch_max: int = 10,
) -> tuple[InputReader, queue.Queue[object]]:
    got: queue.Queue[object] = queue.Queue()

    def read_lanes(partitions: Sequence[int]) -> dict[int, bytes]:
        return {p: v for p, v in (lanes or {}).items() if p in partitions}

    def fallback_offsets(partitions: Sequence[int]) -> dict[int, int]:
        return {p: o for p, o in (fallback or {}).items() if p in partitions}

    reader = InputReader(
        consumer,  # type: ignore[arg-type]
        TOPIC,
        read_lanes,
        make_partition,
        batch_max=batch_max,
        wait_s=0.01,
        max_batches=max_batches,
        fallback_offsets=fallback_offsets if fallback is not None else None,
    )
    reader.start(got.put)
    return reader, got


def offsets(batch: object) -> list[tuple[int, int]]:
    assert isinstance(batch, Batch)
    return [(e.partition, e.offset) for e in batch.events]


@pytest.fixture
def stopped() -> Any:
    readers: list[InputReader] = []
    yield readers.append
    for reader in readers:
        reader.stop()


def test_reading_resumes_at_the_committed_offset_with_the_lane_maximum_there(stopped: Any) -> None:
    history: list[list[int]] = []
    for next_offset, top in ((3, 100), (5, 200), (8, 300)):
        history = record_lane_max(history, next_offset, top)
    consumer = ScriptedConsumer([0, 1, 2], committed={0: 5}, ends={0: 6, 1: 1, 2: 1})
    reader, got = start(consumer, lanes={0: orjson.dumps(history), 1: b"not json"}, fallback={1: 0})
    stopped(reader)
    assigned = got.get(timeout=WAIT)
    assert isinstance(assigned, Assigned)
    # partition 0: committed at 5, the record is newer (a kill before the commit): the history answers
    assert assigned.lanes[0] == (history, 200)
    assert assigned.lanes[1] == ([], 0)  # an unreadable record is no history
    assert assigned.lanes[2] == ([], 0)
    batch = got.get(timeout=WAIT)
    # 0 from its commit, 1 from the other group's commit (the fallback), 2 from its start
    assert sorted(offsets(batch)) == [(0, 5), (1, 0), (2, 0)]


def test_no_more_than_max_batches_are_out_and_done_commits_and_frees_one(stopped: Any) -> None:
    consumer = ScriptedConsumer([0], committed={}, ends={0: 100})
    reader, got = start(consumer, max_batches=2, batch_max=10)
    stopped(reader)
    assert isinstance(got.get(timeout=WAIT), Assigned)
    first, second = got.get(timeout=WAIT), got.get(timeout=WAIT)
    assert offsets(first) == [(0, o) for o in range(10)]
    assert offsets(second) == [(0, o) for o in range(10, 20)]
    with pytest.raises(queue.Empty):
        got.get(timeout=0.3)  # two out: the third waits (and the partition is paused meanwhile)
    assert consumer.paused == {0}
    reader.done({0: 10})
    third = got.get(timeout=WAIT)
    assert offsets(third)[0] == (0, 20)  # nothing skipped, nothing twice
    assert consumer.commits[0] == [(0, 10)]


def test_a_rewind_reads_again_from_the_committed_offset_under_a_new_epoch(stopped: Any) -> None:
    consumer = ScriptedConsumer([0], committed={0: 4}, ends={0: 30})
    reader, got = start(consumer, max_batches=1, batch_max=5)
    stopped(reader)
    assert isinstance(got.get(timeout=WAIT), Assigned)
    batch = got.get(timeout=WAIT)
    assert offsets(batch)[0] == (0, 4)
    reader.rewind(1)  # the loop could not send the batch's outputs
    items = []
    while not (items and isinstance(items[-1], Batch) and items[-1].epoch == 1):
        items.append(got.get(timeout=WAIT))
    assigned = [i for i in items if isinstance(i, Assigned)]
    assert assigned and assigned[-1].epoch == 1
    assert consumer.seeks[-1] == (0, 4)
    assert offsets(items[-1])[0] == (0, 4)


def test_a_revocation_is_handed_on_in_order(stopped: Any) -> None:
    consumer = ScriptedConsumer([0, 1], committed={}, ends={0: 0, 1: 0})
    reader, got = start(consumer)
    stopped(reader)
    assert isinstance(got.get(timeout=WAIT), Assigned)
    consumer.revoke_next = True
    assert got.get(timeout=WAIT) == Revoked((0, 1))


def test_a_failing_consumer_is_reported_and_closed(stopped: Any) -> None:
    consumer = ScriptedConsumer([0], committed={}, ends={0: 0})
    consumer.fail_next = RuntimeError("broken")
    reader, got = start(consumer)
    stopped(reader)
    failure = got.get(timeout=WAIT)
    assert isinstance(failure, RuntimeError)
    reader.stop()
    assert consumer.closed


def test_lag_counts_what_is_not_committed(stopped: Any) -> None:
    consumer = ScriptedConsumer([0], committed={0: 5}, ends={0: 25})
    reader, got = start(consumer, max_batches=1, batch_max=10)
    stopped(reader)
    got.get(timeout=WAIT)
    got.get(timeout=WAIT)
    reader._measure_lag()
    assert reader.lag == {0: 20}
    reader.done({0: 15})
    got.get(timeout=WAIT)  # the next batch: the commit was made before it was handed over
    assert consumer.commits == [[(0, 15)]]
    reader._measure_lag()
    assert reader.lag == {0: 10}


def test_stale_offsets_are_dropped_and_a_hole_is_counted_and_handed_on() -> None:
    class Holes(ScriptedConsumer):
        def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
            return [FakeMessage(0, o) for o in (3, 4, 5, 6, 9, 10)]

    reader = InputReader(
        Holes([0], {}, {0: 0}),  # type: ignore[arg-type]
        TOPIC,
        lambda _p: {},
        make_partition,
        batch_max=10,
        wait_s=0,
    )
    reader._next = {0: 5}  # positioned at 5 (a seek back from 7, say)
    gaps = metrics.OFFSET_GAPS.labels(TOPIC)
    before = gaps._value.get()
    assert [e.offset for e in reader.consume()] == [5, 6, 9, 10]
    assert gaps._value.get() == before + 1
    assert reader._next == {0: 11}


def test_history_of_garbage_is_none() -> None:
    assert history_of(None) == []
    assert history_of(b"") == []
    assert history_of(b"{") == []
    assert history_of(b'{"a": 1}') == []
    assert history_of(b"[[1, 2], [3]]") == []
    assert history_of(b"[[1, 2]]") == [[1, 2]]


def test_a_revocation_waits_for_the_batches_out_and_commits_them_first(stopped: Any) -> None:
    consumer = ScriptedConsumer([0], committed={}, ends={0: 30})
    reader, got = start(consumer, max_batches=1, batch_max=5)
    stopped(reader)
    assert isinstance(got.get(timeout=WAIT), Assigned)
    assert offsets(got.get(timeout=WAIT)) == [(0, o) for o in range(5)]
    consumer.revoke_next = True  # while that batch is out (and the next one fetched, waiting)
    with pytest.raises(queue.Empty):
        got.get(timeout=0.3)  # the revocation waits for the batch out
    reader.done({0: 5})
    assert got.get(timeout=WAIT) == Revoked((0,))  # nothing fetched of the partition was handed over first
    assert consumer.commits == [[(0, 5)]]
