"""The Faust application: topics, tables and agents around the pure core.

Three hops, each a thin loop that decodes, calls the core and writes:

* ``ingest`` (input topic, keyed however producers chose; a task over a
  confluent-kafka reader, see stream/worker/ingest.py): decode Segment calls,
  DLQ the bad ones, re-key the good ones by account (or by user when the call
  names no account);
* ``directory`` (user-keyed): remember users' accounts and traits, resolve
  calls that name no account;
* ``accounts`` (account-keyed): apply calls to account and user state, publish
  activation changes, and adopt new criteria versions.

Plus ``criteria``: validates messages on the criteria topic and broadcasts each
new version to every account partition, so the switch happens at a definite
point of every partition's stream (deterministic on replay).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from faust.types import EventT

from stream.core.activation import apply_envelope, new_account, new_user
from stream.core.clock import PartitionClock, expected_lanes, lateness_detail
from stream.core.criteria import Criteria, load_criteria_bytes, parse_criteria
from stream.core.envelope import Envelope
from stream.core.errors import CriteriaError
from stream.core.lifecycle import triggers_for
from stream.core.parking import DirectoryClock
from stream.core.partitioning import partition_for
from stream.core.state import AccountState, UserState, is_marked
from stream.core.sweep import adopt_criteria, sweep_account
from stream.core.timeutil import utc_now_ms
from stream.settings import Settings
from stream.worker import gauges, metrics
from stream.worker.batching import (
    PROGRESS_PREFIX,
    DeadLetter,
    Outbox,
    by_partition,
    byte_bounded,
    each_call,
    in_partition_of,
)
from stream.worker.directory import DirectoryHop
from stream.worker.dlq import DeadLetters
from stream.worker.faust_app import OffsetGapWatch, RawTable, confirm_batch, make_app, raw_table, raw_topic
from stream.worker.ingest import IngestHop
from stream.worker.memory import release_free_memory
from stream.worker.publisher import Publisher
from stream.worker.reads import CLOCK_KEY, CRITERIA_KEY, TableReads
from stream.worker.web import register_views

log = logging.getLogger("stream.worker")

CONTROL_PREFIX = b'{"criteria":'
#: A worker's nudge to a partition it owns: re-read the wall clock, sweep if due.
TICK = b'{"tick":1}'
USER_KEY_SEP = "\x1f"
#: Packed messages the stateful agents take at once at most, and the bytes of
#: them processed and stored as one batch. Each user and account touched is
#: held three times until its batch is stored (encoded, in the producer's
#: buffer, in the RocksDB write batch), so what bounds memory is the calls a
#: batch touches, which the bytes measure: 4 MB is 64 full packed messages (a
#: batch of 256 of them, ~20k users of Segment batch envelopes, took peak RSS
#: to 1.6 GB in the benchmark). Packed single calls are far smaller, and a
#: batch of 256 of them writes each busy account once instead of four times.
PACKED_BATCH_MAX = 256
PACKED_BATCH_BYTES = 4 * 1024 * 1024
#: The state gauges are refreshed at most every this many times as long as a refresh takes.
GAUGE_COST_FACTOR = 20


def user_key(account_id: str, user_id: str) -> bytes:
    return f"{account_id}{USER_KEY_SEP}{user_id}".encode()


class LRU(OrderedDict[Any, Any]):
    """A small bounded cache of decoded state objects (the table holds the truth)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


class ActivationWorker(IngestHop, DirectoryHop, TableReads):
    """Holds the app, its topics and tables, and the per-partition criteria."""

    def __init__(self, settings: Settings, default_criteria: Criteria) -> None:
        self.settings = settings
        self.default_criteria = default_criteria
        self.app = make_app(settings)
        app, topics = self.app, settings.topics
        self.criteria_topic = raw_topic(app, topics.criteria)
        self.account_topic = raw_topic(app, settings.account_topic, partitions=settings.partitions)
        self.user_topic = raw_topic(app, settings.user_topic, partitions=settings.partitions)
        self.dlq = DeadLetters(raw_topic(app, topics.dlq))
        self.publisher = Publisher(
            settings.partitions,
            self.user_topic,
            self.account_topic,
            raw_topic(app, topics.changes),
            raw_topic(app, topics.alerts),
            raw_topic(app, topics.triggers),
            self.dlq,
        )
        self.accounts = raw_table(app, "accounts", settings.partitions)
        # restored without the accounts and users they vouch for, these would
        # skip a replayed re-evaluation, or sweep, or judge replayed calls late
        self.accounts.marker_keys = frozenset({CRITERIA_KEY, CLOCK_KEY})
        self.users = raw_table(app, "users", settings.partitions)
        self.directory = raw_table(app, "directory", settings.partitions)
        self.directory.marker_keys = frozenset({CLOCK_KEY})  # see stream.worker.directory
        #: The tables each agent writes, and the only ones its batches confirm:
        #: a confirmation delivers whatever a table holds unstored, so one
        #: agent's confirmation must never take another's writes (see confirm_batch).
        self.tables_of: dict[str, tuple[RawTable, ...]] = {
            "directory": (self.directory,),
            "accounts": (self.accounts, self.users),
        }
        self.gaps = OffsetGapWatch(app)
        self.criteria_by_partition: dict[int, Criteria] = {}
        self.clocks: dict[int, PartitionClock] = {}
        self.directory_clocks: dict[int, DirectoryClock] = {}
        inputs = settings.input_partitions or settings.partitions
        self.expected_lanes = expected_lanes(topics.events, inputs, settings.partitions)
        #: (topic, partition) -> highest event time the first hop decoded from it
        self.input_lane_max: dict[tuple[str, int], int] = {}
        self.input_reader = None
        self.account_cache: LRU = LRU(settings.cache_accounts)
        self.user_cache: LRU = LRU(settings.cache_users)
        app.task(self.ingest_task)
        app.agent(self.user_topic, name="directory")(self.directory_agent)
        app.agent(self.account_topic, name="accounts")(self.accounts_agent)
        app.agent(self.criteria_topic, name="criteria")(self.criteria_agent)
        app.on_partitions_revoked.connect(self._forget_cached_state)
        app.on_partitions_assigned.connect(self._forget_cached_state)
        app.on_partitions_assigned.connect(self._count_rebalance)
        app.timer(interval=gauges.REFRESH_SECONDS, name="refresh-gauges")(self._refresh_gauges)
        app.timer(interval=settings.tick_seconds, name="tick-partitions")(self._tick)
        if settings.memory_trim_seconds > 0:
            app.timer(interval=settings.memory_trim_seconds, name="release-free-memory")(self._release_free_memory)
        self.known_criteria: dict[int, Criteria] = {default_criteria.version: default_criteria}
        #: monotonic time before which the state gauges are not recomputed
        self._gauges_due = 0.0
        register_views(self)

    def criteria_of_version(self, version: int) -> Criteria:
        """The criteria of a given version, for views (else the newest known)."""
        return self.known_criteria.get(version) or self.known_criteria[self.latest_version()]

    def latest_version(self) -> int:
        return max(self.known_criteria)

    def is_ready(self) -> bool:
        """Started, assigned (in both groups), and done restoring tables."""
        app = self.app
        input_joined = self.input_reader is not None and self.input_reader.joined  # its own group
        return bool(app.rebalancing is False and app.tables.recovery.completed.is_set() and input_joined)

    def _remember(self, criteria: Criteria) -> Criteria:
        self.known_criteria.setdefault(criteria.version, criteria)
        return criteria

    async def _count_rebalance(self, *_args: Any, **_kwargs: Any) -> None:
        metrics.REBALANCES.labels("tables").inc()

    async def _refresh_gauges(self) -> None:
        """Runs on every worker (each reports its own partitions)."""
        metrics.WORKER_READY.set(1 if self.is_ready() else 0)
        if self.is_ready():
            began = time.monotonic()
            if began < self._gauges_due:
                return
            try:
                gauges.refresh(self)
            except Exception as exc:  # a gauge must never take the worker down
                log.warning("gauge refresh failed: %r", exc)
            # A refresh reads every account the worker owns, on the event loop:
            # with many accounts it is spaced out to cost at most ~5% of the time.
            self._gauges_due = began + GAUGE_COST_FACTOR * (time.monotonic() - began)

    async def _release_free_memory(self) -> None:
        release_free_memory()

    async def _forget_cached_state(self, *_args: Any, **_kwargs: Any) -> None:
        """Partitions moved: another worker may have written what we cached."""
        gauges.zero_product_gauges()
        self._gauges_due = 0.0  # the new partitions' gauges at the next tick
        self.criteria_by_partition.clear()
        self.clocks.clear()
        self.directory_clocks.clear()
        self.account_cache.clear()
        self.user_cache.clear()
        self.gaps.forget()

    # ------------------------------------------------------------ errors

    def _failed(self, outbox: Outbox, event: EventT[bytes], exc: Exception) -> None:
        """An unexpected error on one message: it goes to the DLQ (reason
        ``processing_error``) instead of crashing the agent, which would
        restart it and stall the partition on the same message forever."""
        msg = event.message
        log.error("processing error on %s[%d]@%d: %r", msg.topic, msg.partition, msg.offset, exc, exc_info=exc)
        outbox.dead.append(
            DeadLetter(
                "processing_error",
                type(exc).__name__,
                event.value or b"",
                msg.key,
                msg.topic,
                msg.partition,
                msg.offset,
                None,
            )
        )

    # --------------------------------------------------------- directory

    async def _batches(
        self,
        stream: faust.StreamT[bytes],
        tables: tuple[RawTable, ...],
        start: Callable[[int], Any],
        handle: Callable[[EventT[bytes], int, Any, Outbox], None],
        finish: Callable[[Any], None],
        close: Callable[[int, Any, Outbox], None] | None = None,
    ) -> None:
        """The shape of both stateful agents: per batch and partition, ``start``
        a pending change, ``handle`` each event into it (inside the partition's
        table context), ``close`` it, send the outputs, then ``finish`` (write)
        the change."""
        # internal messages are packed (batching.PACK_MAX_BYTES each): fewer per batch
        batch_max = min(self.settings.batch_max, PACKED_BATCH_MAX)
        async for events in stream.take_events(batch_max, self.settings.batch_wait_ms / 1000):
            self.gaps.check(events)
            for first, end in byte_bounded(events, PACKED_BATCH_BYTES):
                # a failure holds back this batch and every one taken after it
                async with confirm_batch(events[first:], tables):
                    await self._batch(events[first:end], start, handle, finish, close)

    async def _batch(
        self,
        events: list[EventT[bytes]],
        start: Callable[[int], Any],
        handle: Callable[[EventT[bytes], int, Any, Outbox], None],
        finish: Callable[[Any], None],
        close: Callable[[int, Any, Outbox], None] | None,
    ) -> None:
        outbox = Outbox(self.settings.partitions)
        changed: list[tuple[EventT[bytes], Any]] = []
        for partition, group in by_partition(events).items():
            with in_partition_of(group[-1]):
                pending = start(partition)
                for event in group:
                    try:
                        handle(event, partition, pending, outbox)
                    except Exception as exc:
                        self._failed(outbox, event, exc)
                if close is not None:
                    try:
                        close(partition, pending, outbox)
                    except Exception as exc:  # a sweep must not stop the partition
                        log.error("sweep failed on partition %d: %r", partition, exc, exc_info=exc)
                changed.append((group[-1], pending))
        await self.publisher.send(outbox)  # outputs before state: see Publisher.send
        for anchor, pending in changed:
            with in_partition_of(anchor):
                finish(pending)

    # ---------------------------------------------------------- accounts

    def criteria_for(self, partition: int) -> Criteria:
        """The criteria this partition runs under (called inside its events).

        A partition adopts the file's criteria the first time it runs and
        persists them; from then on only a control message switches it, so the
        switch happens at one definite point of the partition's stream.
        """
        criteria = self.criteria_by_partition.get(partition)
        if criteria is None:
            stored = self.accounts.get(CRITERIA_KEY)
            if stored is not None:
                criteria = self._remember(parse_criteria(orjson.loads(stored)))
            else:
                criteria = self.default_criteria
                self.accounts[CRITERIA_KEY] = orjson.dumps(dict(criteria.document))
            self.criteria_by_partition[partition] = criteria
        return criteria

    def _load_account(self, account_id: str, criteria: Criteria, dirty: _Dirty) -> AccountState:
        """The batch's own copy first: the cache may have evicted it before it was written."""
        state = dirty.accounts.get(account_id) or self.account_cache.get(account_id)
        if state is None:
            raw = self.accounts.get(account_id.encode())
            state = AccountState.from_bytes(account_id, raw) if raw is not None else new_account(account_id, criteria)
            self.account_cache.put(account_id, state)
        return state

    def _load_user(self, account_id: str, user_id: str, dirty: _Dirty) -> UserState:
        key = (account_id, user_id)
        user = dirty.users.get(key) or self.user_cache.get(key)
        if user is None:
            raw = self.users.get(user_key(account_id, user_id))
            user = UserState.from_bytes(account_id, user_id, raw) if raw is not None else new_user(*key)
            self.user_cache.put(key, user)
        return user

    async def accounts_agent(self, stream: faust.StreamT[bytes]) -> None:
        await self._batches(stream, self.tables_of["accounts"], _Dirty, self._account_event, self._write, self._sweep)

    def _account_event(self, event: EventT[bytes], partition: int, dirty: _Dirty, outbox: Outbox) -> None:
        if event.value == TICK:
            return  # the batch's close reads the wall clock
        if event.value.startswith(PROGRESS_PREFIX):
            clock = self.partition_clock(partition)
            for lane, ts in orjson.loads(event.value)["progress"].items():
                clock.observe(lane, ts, dirty.now)
            dirty.clock_changed = True
            return
        if event.value.startswith(CONTROL_PREFIX):
            self._write(dirty)  # re-evaluation reads the tables: bring them up to date first
            self._adopt_criteria(event, partition, outbox)
        else:
            self._account_calls(event, partition, dirty, outbox)

    def _account_calls(self, event: EventT[bytes], partition: int, dirty: _Dirty, outbox: Outbox) -> None:
        if event.message.timestamp:
            metrics.PROCESSING_LATENCY.observe(max(0.0, utc_now_ms() / 1000 - event.message.timestamp))
        criteria = self.criteria_for(partition)
        each_call(event.value, outbox, lambda env: self._account_call(env, criteria, dirty, outbox))

    def _account_call(self, env: Envelope, criteria: Criteria, dirty: _Dirty, outbox: Outbox) -> None:
        state = self._load_account(env.account_id, criteria, dirty)
        clock = self.partition_clock(dirty.partition)
        # ``lm``: its input partition's running maximum at the call, exact
        # across restarts and moves of the first hop (see _resume_lane)
        late = env.kind == "track" and clock.is_late(env.lm, env.ts, self.settings.time)
        if late and not is_marked(state.applied, env.lane, env.position):
            metrics.counter_of(metrics.ACCOUNT_CALLS, "late").inc()
            outbox.dead_envelopes.append(("late", lateness_detail(env.lm, env.ts, self.settings.time), env))
            return
        if env.lm:
            clock.observe(env.lane, env.lm, dirty.now)
            dirty.clock_changed = True
        if state.criteria_version < criteria.version:
            # An account first seen under older criteria, touched after a
            # switch it missed (e.g. restored from an old changelog).
            members = self._members(state, dirty)
            outbox.add(adopt_criteria(state, members, criteria, env.ts))
            dirty.accounts[env.account_id] = state
            dirty.users.update(((env.account_id, uid), u) for uid, u in members.items())
        user = self._load_user(env.account_id, env.user_id, dirty)
        outcome = apply_envelope(state, user, env, criteria, self.settings.limits)
        metrics.counter_of(metrics.ACCOUNT_CALLS, outcome.status).inc()
        if outcome.status == "duplicate":
            metrics.DUPLICATES.inc()
            return
        dirty.accounts[env.account_id] = state
        if env.user_id in state.members:  # a user past the account's user limit gets no record
            dirty.users[(env.account_id, env.user_id)] = user
        if outcome.status == "rejected":
            outbox.dead_envelopes.append((outcome.reason, outcome.detail, env))
        outbox.records += outcome.records
        outbox.triggers += triggers_for(outcome.records, state, criteria)

    def partition_clock(self, partition: int) -> PartitionClock:
        """The partition's event-time clock (lanes, watermark, sweeps)."""
        clock = self.clocks.get(partition)
        if clock is None:
            raw = self.accounts.get_in(partition, CLOCK_KEY)
            clock = self.clocks[partition] = PartitionClock.load(raw, utc_now_ms(), self.expected_lanes)
        return clock

    def clock_for(self, partition: int) -> int:
        """The newest event time applied on the partition: "now" for views."""
        return self.partition_clock(partition).newest

    def clock_of_account(self, account_id: str) -> int:
        return self.clock_for(partition_for(account_id, self.settings.partitions))

    def partition_clock_swept(self, account_id: str) -> int:
        """The last midnight the account's partition swept (for views)."""
        return self.partition_clock(partition_for(account_id, self.settings.partitions)).swept

    def _sweep(self, partition: int, dirty: _Dirty, outbox: Outbox) -> None:
        """After a partition's part of a batch: advance the watermark and run
        the midnight sweeps it passed, for every account of the partition."""
        clock = self.partition_clock(partition)
        before = clock.floor
        watermark = clock.watermark(self.settings.time, utc_now_ms())
        metrics.WATERMARK.labels(str(partition)).set(watermark / 1000)
        if watermark != before:
            dirty.clock_changed = True
        due = clock.due_midnights(watermark)
        if not due:
            return
        criteria = self.criteria_for(partition)
        account_ids = sorted({k.decode() for k in self._partition_account_keys(partition)} | set(dirty.accounts))
        began = time.perf_counter()
        for midnight in due:
            started = time.perf_counter()
            for account_id in account_ids:
                state = self._load_account(account_id, criteria, dirty)
                outbox.add(sweep_account(state, criteria, midnight))
                if state.swept == midnight:  # it changed the account (see sweep_account)
                    dirty.accounts[account_id] = state
            clock.swept = midnight
            metrics.SWEEPS.inc()
            metrics.SWEEP_SECONDS.observe(time.perf_counter() - started)
        dirty.clock_changed = True
        log.info(
            "partition %d: swept %d midnight(s) up to %d over %d accounts in %.3f s",
            partition,
            len(due),
            due[-1],
            len(account_ids),
            time.perf_counter() - began,
        )

    async def _tick(self) -> None:
        """Each worker nudges the account partitions it owns, so their
        watermarks follow the wall clock when no events arrive (sweeps need
        stream iteration to write tables)."""
        if not self.is_ready():
            return
        for partition in self.owned_partitions(self.settings.account_topic):
            await self.account_topic.send(key=b"\x00tick", value=TICK, partition=partition, force=True)

    def _write(self, dirty: _Dirty) -> None:
        """One table write per account and user touched (inside the partition's context)."""
        for account_id, state in dirty.accounts.items():
            self.accounts[account_id.encode()] = state.to_bytes()
        for (account_id, user_id), user in dirty.users.items():
            self.users[user_key(account_id, user_id)] = user.to_bytes()
        if dirty.clock_changed:  # last: a stored sweep implies its accounts are stored
            self.accounts[CLOCK_KEY] = self.partition_clock(dirty.partition).dump()
            dirty.clock_changed = False
        dirty.accounts.clear()
        dirty.users.clear()

    def _members(self, state: AccountState, dirty: _Dirty) -> dict[str, UserState]:
        return {uid: self._load_user(state.account_id, uid, dirty) for uid in state.members}

    def _adopt_criteria(self, event: EventT[bytes], partition: int, outbox: Outbox) -> None:
        control: Mapping[str, Any] = orjson.loads(event.value)
        new = self._remember(parse_criteria(control["criteria"]))
        current = self.criteria_for(partition)
        if new.version <= current.version:
            return  # replayed or outdated: versions only move forward
        # the change takes effect at the partition's own event time (what was
        # applied so far), so a replay puts it at the same point
        at_ms = self.partition_clock(partition).newest or int(control["at"])
        self.criteria_by_partition[partition] = new
        self.accounts[CRITERIA_KEY] = orjson.dumps(dict(new.document))
        log.info("partition %d: criteria v%d -> v%d, re-evaluating", partition, current.version, new.version)
        keys = self._partition_account_keys(partition)
        for key in keys:
            dirty = _Dirty(partition)
            account_id = key.decode()
            state = dirty.accounts[account_id] = self._load_account(account_id, new, dirty)
            users = self._members(state, dirty)
            outbox.add(adopt_criteria(state, users, new, at_ms))
            dirty.users.update(((account_id, uid), u) for uid, u in users.items())
            self._write(dirty)
        metrics.CRITERIA_VERSION.set(new.version)
        log.info("partition %d: %d accounts re-evaluated under criteria v%d", partition, len(keys), new.version)

    # ---------------------------------------------------------- criteria

    async def criteria_agent(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            msg = event.message
            try:
                criteria = load_criteria_bytes(event.value)
            except CriteriaError as exc:
                await self.dlq.send(
                    "bad_criteria", str(exc), event.value, msg.key, msg.topic, msg.partition, msg.offset, None
                )
                continue
            at_ms = int(msg.timestamp * 1000) if msg.timestamp else utc_now_ms()
            control = orjson.dumps({"criteria": dict(criteria.document), "at": at_ms})
            for partition in range(self.settings.partitions):
                await self.account_topic.send(key=CRITERIA_KEY, value=control, partition=partition)
            log.info("criteria v%d published to %d partitions", criteria.version, self.settings.partitions)


@dataclass
class _Dirty:
    """Accounts and users changed by the batch, written once at its end."""

    partition: int
    clock_changed: bool = False
    #: The wall clock when the batch began (read once, not per call).
    now: int = field(default_factory=utc_now_ms)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    users: dict[tuple[str, str], UserState] = field(default_factory=dict)
