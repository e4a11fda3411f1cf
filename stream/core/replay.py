"""The whole pipeline in memory: decode, route, directory, accounts.

Runs the same rules as the workers, without Kafka, for unit and property tests,
for offline replay of an event file, and as the reference the verifier compares
live state against. Hops run depth-first, so arrival order differs from a live
run; the final state does not, because state is order-independent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from stream.core.activation import ActivationLimits, Record, apply_envelope, new_account, new_user
from stream.core.clock import PartitionClock, TimeRules, expected_lanes, input_lanes, lateness_detail
from stream.core.criteria import Criteria
from stream.core.envelope import Envelope
from stream.core.lifecycle import Trigger, triggers_for
from stream.core.parking import DirectoryClock, give_up_parked
from stream.core.partitioning import partition_for
from stream.core.routing import (
    TO_ACCOUNT,
    VISITOR_PREFIX,
    DirectoryEntry,
    ParkingLimits,
    apply_to_directory,
    direct_lane,
    route_call,
    user_lane,
    visitor_counts,
)
from stream.core.segment import DecodeLimits, Rejection, decode_message
from stream.core.state import AccountState, UserState, is_marked
from stream.core.sweep import Produced, adopt_criteria, sweep_account


@dataclass(slots=True)
class OfflinePipeline:
    criteria: Criteria
    partitions: int = 4
    topic: str = "product-events"
    decode_limits: DecodeLimits = field(default_factory=DecodeLimits)
    limits: ActivationLimits = field(default_factory=ActivationLimits)
    parking: ParkingLimits = field(default_factory=ParkingLimits)
    accounts: dict[str, AccountState] = field(default_factory=dict)
    users: dict[tuple[str, str], UserState] = field(default_factory=dict)
    directory: dict[str, DirectoryEntry] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    triggers: list[Trigger] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    time: TimeRules = field(default_factory=TimeRules)
    #: Partitions of the input topic: each is a lane every clock waits for.
    input_partitions: int = 1
    alerts: list[Record] = field(default_factory=list)
    #: account partition -> its event-time clock. Offline every lane is always
    #: active (there is no wall clock): see :meth:`finish` for the idle end.
    clocks: dict[int, PartitionClock] = field(default_factory=dict)

    #: input partition -> highest event time decoded from it
    lane_max: dict[int, int] = field(default_factory=dict)
    #: directory partition -> the input's progress and its parked users
    directory_clocks: dict[int, DirectoryClock] = field(default_factory=dict)

    def feed(self, value: bytes, *, partition: int = 0, offset: int = 0, broker_ts: int | None = None) -> None:
        self._feed(value, partition, offset, broker_ts)
        # the progress the first hop and the directory send after each batch
        lane = direct_lane(self.topic, partition)
        top = self.lane_max.get(partition)
        for p in range(self.partitions):
            clock = self._clock(p)
            if top is not None:
                for each in (lane, *(user_lane(u, lane) for u in range(self.partitions))):
                    clock.observe(each, top, 0)
                self._directory_clock(p).observe(lane, top, 0)
            self._sweep(p, clock.watermark(self.time, 0))
        for directory_clock in self.directory_clocks.values():
            self._give_up_parked(directory_clock)

    def _directory_clock(self, partition: int) -> DirectoryClock:
        clock = self.directory_clocks.get(partition)
        if clock is None:
            lanes = input_lanes(self.topic, self.input_partitions)
            clock = self.directory_clocks[partition] = DirectoryClock.load(None, 0, lanes)
        return clock

    def _give_up_parked(self, clock: DirectoryClock) -> None:
        """Parked calls the whole input has passed by the grace period (as the
        directory does after each batch)."""
        if not clock.parked:
            return
        given_up = give_up_parked(clock, self.directory.__getitem__, clock.watermark(self.time, 0), self.parking)
        for expired in given_up.values():
            for call in expired:
                self._no_account(call)

    def _no_account(self, rejected: Envelope) -> None:
        value = rejected.raw.encode() if rejected.raw is not None else rejected.to_bytes()
        self.rejections.append(Rejection("no_account", "no group call names this user's account", value))

    def _clock(self, partition: int) -> PartitionClock:
        clock = self.clocks.get(partition)
        if clock is None:
            lanes = expected_lanes(self.topic, self.input_partitions, self.partitions)
            clock = self.clocks[partition] = PartitionClock.load(None, 0, lanes)
        return clock

    def _feed(self, value: bytes, partition: int, offset: int, broker_ts: int | None) -> None:
        for item in decode_message(value, broker_timestamp_ms=broker_ts, limits=self.decode_limits):
            if isinstance(item, Rejection):
                self.rejections.append(item)
                continue
            top = self.lane_max[partition] = max(self.lane_max.get(partition, 0), item.timestamp_ms)
            for target, env in route_call(item, self.topic, partition, offset, top):
                if target == TO_ACCOUNT:
                    self._apply(env)
                else:
                    self._directory(env)

    def feed_all(self, values: Iterable[bytes]) -> None:
        """Feed values as one partition's consecutive offsets, keyed as producers would."""
        for offset, value in enumerate(values):
            self.feed(value, offset=offset)

    def _directory(self, env: Envelope) -> None:
        entry = self.directory.setdefault(env.user_id, DirectoryEntry())
        partition = partition_for(env.user_id, self.partitions)
        outcome = apply_to_directory(entry, env, partition, self.parking)
        self._directory_clock(partition).note(env.user_id, entry)
        for rejected in outcome.rejected:
            self._no_account(rejected)
        for fwd in outcome.forward:
            self._apply(fwd)

    def visitor_counts(self) -> tuple[int, int]:
        return visitor_counts(e for uid, e in self.directory.items() if uid.startswith(VISITOR_PREFIX))

    def clock_for(self, account_id: str) -> int:
        """The newest event time of the account's partition (as a worker keeps it)."""
        clock = self.clocks.get(partition_for(account_id, self.partitions))
        return clock.newest if clock is not None else 0

    def swept_for(self, account_id: str) -> int:
        """The last midnight the account's partition swept (as a worker keeps it)."""
        clock = self.clocks.get(partition_for(account_id, self.partitions))
        return clock.swept if clock is not None else 0

    def _sweep(self, partition: int, watermark: int) -> None:
        clock = self.clocks[partition]
        for midnight in clock.due_midnights(watermark):
            for account_id in sorted(self.accounts):
                if partition_for(account_id, self.partitions) == partition:
                    self._add(sweep_account(self.accounts[account_id], self.criteria, midnight))
            clock.swept = midnight

    def finish(self, idle_ms: int = 0) -> None:
        """The end of the stream: every lane goes idle and, as a live worker's
        watermark does, the clock moves on by ``idle_ms`` of silence."""
        for p, clock in self.clocks.items():
            self._sweep(p, max(clock.floor, clock.newest - self.time.allowed_lateness_ms + idle_ms))

    def _add(self, produced: Produced) -> None:
        self.records += produced.records
        self.triggers += produced.triggers
        self.alerts += produced.alerts

    def _apply(self, env: Envelope) -> None:
        partition = partition_for(env.account_id, self.partitions)
        clock = self._clock(partition)
        state = self.accounts.get(env.account_id)
        if state is None:
            state = self.accounts[env.account_id] = new_account(env.account_id, self.criteria)
        late = env.kind == "track" and clock.is_late(env.lm, env.ts, self.time)
        if late and not is_marked(state.applied, env.lane, env.position):
            detail = lateness_detail(env.lm, env.ts, self.time)
            self.rejections.append(Rejection("late", detail, env.to_bytes()))
            return
        clock.observe(env.lane, env.lm, 0)
        key = (env.account_id, env.user_id)
        user = self.users.get(key)
        if user is None:
            user = self.users[key] = new_user(env.account_id, env.user_id)
        outcome = apply_envelope(state, user, env, self.criteria, self.limits)
        if env.user_id not in state.members:
            del self.users[key]  # past the account's user limit: no record (as a worker stores none)
        if outcome.status == "applied":
            self.applied += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        else:
            self.rejections.append(Rejection(outcome.reason, outcome.detail, env.to_bytes()))
        self.records += outcome.records
        self.triggers += triggers_for(outcome.records, state, self.criteria)

    def change_criteria(self, criteria: Criteria, at_ms: int) -> list[Record]:
        """Adopt a new criteria version and re-evaluate every account, at each
        partition's newest event time (as the workers do)."""
        self.criteria = criteria
        out: list[Record] = []
        for account_id, state in self.accounts.items():
            users = {uid: u for (aid, uid), u in self.users.items() if aid == account_id}
            clock = self.clocks.get(partition_for(account_id, self.partitions))
            produced = adopt_criteria(state, users, criteria, (clock.newest if clock else 0) or at_ms)
            self.triggers += produced.triggers
            self.alerts += produced.alerts
            out += produced.records
        self.records += out
        return out
