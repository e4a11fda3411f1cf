"""The whole pipeline in memory: decode, route, directory, accounts.

Runs the same rules as the workers, without Kafka, for unit and property tests,
for offline replay of an event file, and as the reference the verifier compares
live state against. Hops run depth-first, so arrival order differs from a live
run; the final state does not, because state is order-independent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from stream.core.activation import ActivationLimits, Record, apply_envelope, new_account, new_user, recompute
from stream.core.criteria import Criteria
from stream.core.envelope import Envelope
from stream.core.lifecycle import Trigger, triggers_for
from stream.core.partitioning import partition_for
from stream.core.routing import TO_ACCOUNT, DirectoryEntry, ParkingLimits, apply_to_directory, route_call
from stream.core.segment import DecodeLimits, Rejection, decode_message
from stream.core.state import AccountState, UserState


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
    #: account partition -> highest event time of the calls applied there
    clocks: dict[int, int] = field(default_factory=dict)

    def feed(self, value: bytes, *, partition: int = 0, offset: int = 0, broker_ts: int | None = None) -> None:
        for item in decode_message(value, broker_timestamp_ms=broker_ts, limits=self.decode_limits):
            if isinstance(item, Rejection):
                self.rejections.append(item)
                continue
            for target, env in route_call(item, self.topic, partition, offset):
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
        outcome = apply_to_directory(entry, env, partition_for(env.user_id, self.partitions), self.parking)
        for rejected in outcome.rejected:
            value = rejected.raw.encode() if rejected.raw is not None else rejected.to_bytes()
            self.rejections.append(Rejection("no_account", "no group call names this user's account", value))
        for fwd in outcome.forward:
            self._apply(fwd)

    def clock_for(self, account_id: str) -> int:
        """The event-time clock of the account's partition (as a worker keeps it)."""
        return self.clocks.get(partition_for(account_id, self.partitions), 0)

    def _apply(self, env: Envelope) -> None:
        partition = partition_for(env.account_id, self.partitions)
        self.clocks[partition] = max(self.clocks.get(partition, 0), env.ts)
        state = self.accounts.get(env.account_id)
        if state is None:
            state = self.accounts[env.account_id] = new_account(env.account_id, self.criteria)
        key = (env.account_id, env.user_id)
        user = self.users.get(key)
        if user is None:
            user = self.users[key] = new_user(env.account_id, env.user_id)
        outcome = apply_envelope(state, user, env, self.criteria, self.limits)
        if outcome.status == "applied":
            self.applied += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        else:
            self.rejections.append(Rejection(outcome.reason, "per-account user limit", env.to_bytes()))
        self.records += outcome.records
        self.triggers += triggers_for(outcome.records, state, self.criteria)

    def change_criteria(self, criteria: Criteria, at_ms: int) -> list[Record]:
        """Adopt a new criteria version and re-evaluate every account."""
        self.criteria = criteria
        out: list[Record] = []
        for account_id, state in self.accounts.items():
            users = {uid: u for (aid, uid), u in self.users.items() if aid == account_id}
            records = recompute(state, users, criteria, at_ms)
            self.triggers += triggers_for(records, state, criteria)
            out += records
        self.records += out
        return out
