"""A Faust consumer that hands an agent each offset of its partitions in order.

Why: right after a rebalance Faust could hand an agent a message past the
offset the group had committed ("expected 2086, got 2095" on every input
partition, right after the seek to the committed offsets). Two paths in
Faust's fetch loop lead there:

* a batch fetched before the seek is still being handed out after it, and the
  first stale message past the committed offset is taken as a real hole
  (Faust records a "gap" it will later treat as acknowledged);
* a message that was being handed over while the seek ran moves Faust's read
  offset past the committed one once the hand-over completes.

Either way the re-fetched messages below the read offset are dropped as
"already read", Faust commits past them, and their calls are lost. Here every
message of an agent's topics is checked against the next offset of its
partition before Faust sees it; a message past it sends the consumer back to
that offset instead. Only a hole that is still there after a few fresh fetches
(a transaction marker, say) is let through, with a warning and the
``stream_offset_gaps_total`` counter.

The transport also sets how long a fetch may wait for new messages
(:class:`FetchWaitConsumerThread`), which Faust otherwise fixes at 1.5 s.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from mode.services import WaitResults

from stream.worker import metrics
from stream.worker.eager import run_until_blocked

log = logging.getLogger(__name__)

#: Fresh fetches that must show the same hole before it is taken as real.
RESEEKS_BEFORE_GAP = 3


class Verdict(enum.Enum):
    HAND_ON = "hand on"  # the next offset: give it to Faust
    HAND_ON_GAP = "hand on past a real gap"  # the hole survived the re-fetches
    DROP = "drop"  # below the next offset: already handed on
    RESEEK = "reseek"  # past the next offset: fetch again from the next one


class OffsetSequencer:
    """Per partition, the next offset an agent must be handed.

    Pure bookkeeping, no I/O: the consumer tells it where it seeked and asks,
    for each fetched message, what to do with it.
    """

    def __init__(self, reseeks_before_gap: int = RESEEKS_BEFORE_GAP) -> None:
        self.reseeks_before_gap = reseeks_before_gap
        self._next: dict[TP, int] = {}
        self._handed: dict[TP, int] = {}
        # partition -> (expected, got, times seen): the hole being re-fetched
        self._holes: dict[TP, tuple[int, int, int]] = {}

    def positioned(self, tp: TP, offset: int | None) -> None:
        """The consumer was sent to ``offset`` (None: no committed offset yet,
        so the first message fetched sets the sequence)."""
        self._handed.pop(tp, None)
        self._holes.pop(tp, None)
        if offset is None:
            self._next.pop(tp, None)
        else:
            self._next[tp] = offset

    def forget(self, tp: TP) -> None:
        """The partition was revoked: nothing is known about it any more."""
        self.positioned(tp, None)

    def next_offset(self, tp: TP) -> int | None:
        return self._next.get(tp)

    def decide(self, tp: TP, offset: int) -> Verdict:
        expected = self._next.get(tp)
        if expected is None or offset == expected:
            self._hand_on(tp, offset)
            return Verdict.HAND_ON
        if offset < expected:
            return Verdict.DROP
        seen = self._holes.get(tp)
        times = seen[2] + 1 if seen is not None and seen[:2] == (expected, offset) else 1
        if times > self.reseeks_before_gap:
            self._hand_on(tp, offset)
            return Verdict.HAND_ON_GAP
        self._holes[tp] = (expected, offset, times)
        return Verdict.RESEEK

    def may_mark_read(self, tp: TP, offset: int | None) -> bool:
        """Faust may record ``offset`` as read only if it is the message last
        handed on: a hand-over that began before a seek must not move the read
        offset past the seek."""
        return offset is not None and self._handed.get(tp) == offset

    def _hand_on(self, tp: TP, offset: int) -> None:
        self._next[tp] = offset + 1
        self._handed[tp] = offset
        self._holes.pop(tp, None)


class _GuardedReadOffsets(defaultdict):  # type: ignore[type-arg]
    """Faust's per-partition read offsets, refusing writes the sequencer did
    not hand out (``update`` -- used by Faust's seek to committed -- is not
    filtered)."""

    def __init__(self, may_set: Callable[[TP, int | None], bool]) -> None:
        super().__init__(lambda: None)
        self._may_set = may_set

    def __setitem__(self, tp: TP, offset: int | None) -> None:
        if self._may_set(tp, offset):
            super().__setitem__(tp, offset)


class SequencedConsumer(aiokafka_driver.Consumer):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sequencer = OffsetSequencer()
        self._seeking = False
        self._guarded: frozenset[str] | None = None
        self._read_offset = _GuardedReadOffsets(self._may_set_read_offset)

    def guarded_topics(self) -> frozenset[str]:
        """The agents' source topics: written without transactions or
        compaction, so their offsets are consecutive (changelogs are not
        checked: compaction leaves holes in them)."""
        if self._guarded is None:
            names: set[str] = set()
            for agent in self.app.agents.values():
                names.update(agent.channel.topics)
            self._guarded = frozenset(names)
        return self._guarded

    def _may_set_read_offset(self, tp: TP, offset: int | None) -> bool:
        if self._seeking or tp.topic not in self.guarded_topics():
            return True
        if self.sequencer.may_mark_read(tp, offset):
            return True
        log.info(
            "read offset of %s[%d] kept at %s: the hand-over of %s began before the seek",
            tp.topic,
            tp.partition,
            self._read_offset.get(tp),
            offset,
        )
        return False

    @contextmanager
    def _seek_scope(self) -> Iterator[None]:
        self._seeking = True
        try:
            yield
        finally:
            self._seeking = False

    async def seek(self, partition: TP, offset: int) -> None:
        with self._seek_scope():
            await super().seek(partition, offset)
        self.sequencer.positioned(partition, offset if offset else None)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        for tp, offset in list(self._read_offset.items()):
            if tp.topic in self.guarded_topics():
                self.sequencer.positioned(tp, offset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        for tp in revoked:
            self.sequencer.forget(tp)
        await super().on_partitions_revoked(revoked)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """Faust's fetch loop calls this once per message, to hand it to the
        agents' queues unless the flow is suspended first. The hand-over is
        run at once (:mod:`stream.worker.eager`); only when it has to wait does
        the race against the stop events take place, as before."""
        flow_stopped = self.suspend_flow.is_set() or self._stopped.is_set() or self._crashed.is_set()
        if timeout is None and coros and asyncio.iscoroutine(coros[0]) and not flow_stopped:
            first, *others = coros
            result, rest = run_until_blocked(first)
            if rest is None:
                for other in others:
                    if asyncio.iscoroutine(other):
                        other.close()  # never started: no "never awaited" warning
                return WaitResults([first], [result], False)
            coros = (rest, *others)
        return await super().wait_first(*coros, timeout=timeout)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Any]]:
        guarded = self.guarded_topics()
        sequencer = self.sequencer
        refetching: set[TP] = set()
        async for tp, message in super().getmany(timeout):
            if tp.topic not in guarded:
                yield tp, message
                continue
            if tp in refetching:
                continue  # the rest of a batch already sent back
            verdict = sequencer.decide(tp, message.offset)
            if verdict is Verdict.HAND_ON:
                yield tp, message
            elif verdict is Verdict.RESEEK:
                expected = sequencer.next_offset(tp)
                assert expected is not None
                log.info(
                    "fetched %s[%d] from %d, expected %d: fetching again from %d",
                    tp.topic,
                    tp.partition,
                    message.offset,
                    expected,
                    expected,
                )
                refetching.add(tp)
                with self._seek_scope():
                    await super().seek(tp, expected)
            elif verdict is Verdict.HAND_ON_GAP:
                metrics.OFFSET_GAPS.labels(tp.topic).inc()
                log.warning(
                    "offsets missing on %s[%d] before %d after %d fetches: taken as a real gap",
                    tp.topic,
                    tp.partition,
                    message.offset,
                    RESEEKS_BEFORE_GAP + 1,
                )
                yield tp, message

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchWaitConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):  # type: ignore[misc]
    """Faust's consumer thread, with the transport's fetch wait instead of the
    1,500 ms Faust fixes: the embedded broker holds every fetch that finds no
    new message for the whole wait, even when one arrives meanwhile, so each
    hop that had caught up added up to 1.5 s (p99 1.8 s where the pipeline
    needs 0.3 s; README "Latency")."""

    def _create_worker_consumer(self, transport: SequencedTransport) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its fetcher when the consumer starts
        consumer._fetch_max_wait_ms = transport.fetch_wait_ms
        return consumer


class SequencedTransport(aiokafka_driver.Transport):  # type: ignore[misc]
    """The aiokafka transport with :class:`SequencedConsumer`, whose fetches
    wait at most ``fetch_wait_ms`` for new messages."""

    Consumer = SequencedConsumer

    def __init__(self, url: Any, app: Any, fetch_wait_ms: int = 1500, **kwargs: Any) -> None:
        super().__init__(url, app, **kwargs)
        self.fetch_wait_ms = fetch_wait_ms
