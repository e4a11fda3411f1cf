"""Per-account and per-user state: retained event counts and activation.

An account record holds the account-wide tallies and, per member, just what
account rules need (role, milestones reached); each user's detail is a record
of its own. Each record carries its own idempotency marks (the highest applied
input offsets per lane), so the two writes an event causes need not be atomic:
a replay re-applies exactly the half that was lost. State is built from facts that do not depend on arrival order:
counts, the smallest event times, and per-key "latest event time wins" traits;
so the same set of events gives the same state in any order. The stored
layout, and the msgspec types it is read into, are in stream.core.records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from stream.core.activity import DayMask
from stream.core.engagement import DayCounts
from stream.core.records import (
    ACCOUNT_DECODER,
    ENCODER,
    USER_DECODER,
    AccountRecord,
    Alert,
    Member,
    Tally,
    Traits,
    UserRecord,
    member_json,
)

if TYPE_CHECKING:
    from stream.core.member_index import MemberIndex

#: Per user and event name: property keys, and values per key, retained so a
#: ``where`` filter added by a later criteria version counts past events.
MAX_PROPERTY_KEYS = 8
MAX_PROPERTY_VALUES = 8


def set_traits(traits: Traits, new: dict[str, Any], ts: int) -> bool:
    """Latest event time wins, per key. Returns True if anything changed."""
    changed = False
    for key, value in new.items():
        old = traits.get(key)
        if old is None or ts > old[1] or (ts == old[1] and repr(value) > repr(old[0])):
            if old is None or old[0] != value:
                changed = True
            traits[key] = [value, ts]
    return changed


def trait(traits: Traits, key: str) -> Any:
    entry = traits.get(key)
    return None if entry is None else entry[0]


def is_marked(marks: dict[str, list[int]], lane: str, position: tuple[int, int, int]) -> bool:
    """True if ``position`` (offset, index, sub) of ``lane`` is at or below the mark."""
    mark = marks.get(lane)
    return mark is not None and position <= (mark[0], mark[1], mark[2] if len(mark) > 2 else 0)


def is_applied(marks: dict[str, list[int]], lane: str, position: tuple[int, int, int]) -> bool:
    """True if ``position`` of ``lane`` is at or below the mark; else advance
    the mark to it."""
    if is_marked(marks, lane, position):
        return True
    marks[lane] = list(position)
    return False


@dataclass(slots=True)
class UserState:
    """One user of one account: retained tallies and the user's activation.

    Stored under its own key so an event costs a small write, not a rewrite of
    the whole account. Carries its own idempotency marks and recent messageIds.
    """

    account_id: str
    user_id: str
    traits: Traits = field(default_factory=dict)
    first_seen: int | None = None
    last_seen: int | None = None
    events: dict[str, Tally] = field(default_factory=dict)
    wheres: dict[str, Tally] = field(default_factory=dict)
    #: event -> property key -> canonical value -> tally; a key mapped to None
    #: had too many distinct values and is no longer retained.
    props: dict[str, dict[str, dict[str, Tally] | None]] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0
    activated_at: int | None = None
    applied: dict[str, list[int]] = field(default_factory=dict)
    #: Recently seen messageIds -> event time, for duplicate suppression.
    seen_ids: dict[str, int] = field(default_factory=dict)
    #: Engagement: day -> event name -> count, for the last KEPT_DAYS days.
    days: DayCounts = field(default_factory=dict)
    #: Days with any tracked event, and days with a key event.
    active: DayMask = field(default_factory=DayMask)
    key: DayMask = field(default_factory=DayMask)

    @property
    def role(self) -> str | None:
        role = trait(self.traits, "role")
        return role if isinstance(role, str) else None

    def seen(self, ts: int) -> None:
        if self.first_seen is None or ts < self.first_seen:
            self.first_seen = ts
        if self.last_seen is None or ts > self.last_seen:
            self.last_seen = ts

    def to_bytes(self) -> bytes:
        return ENCODER.encode(
            UserRecord(
                t=self.traits,
                f=self.first_seen,
                l=self.last_seen,
                e=self.events,
                w=self.wheres,
                p=self.props,
                r=self.reached,
                rate=self.rate,
                a=self.activated_at,
                ap=self.applied,
                s=self.seen_ids,
                d=self.days,
                am=self.active,
                km=self.key,
            )
        )

    @classmethod
    def from_bytes(cls, account_id: str, user_id: str, raw: bytes) -> UserState:
        d = USER_DECODER.decode(raw)
        return cls(
            account_id=account_id,
            user_id=user_id,
            traits=d.t,
            first_seen=d.f,
            last_seen=d.l,
            events=d.e,
            wheres=d.w,
            props=d.p,
            reached=d.r,
            rate=d.rate,
            activated_at=d.a,
            applied=d.ap,
            seen_ids=d.s,
            days=d.d,
            active=d.am,
            key=d.km,
        )


@dataclass(slots=True)
class AccountState:
    account_id: str
    criteria_version: int = 0
    traits: Traits = field(default_factory=dict)
    first_seen: int | None = None
    last_seen: int | None = None
    members: dict[str, Member] = field(default_factory=dict)
    #: Account-wide tallies (sums over users), kept incrementally.
    events: dict[str, Tally] = field(default_factory=dict)
    wheres: dict[str, Tally] = field(default_factory=dict)
    reached: dict[str, int] = field(default_factory=dict)
    rate: float = 0.0
    activated_at: int | None = None
    #: Idempotency: input lane -> [offset, batch index] of the last applied record.
    applied: dict[str, list[int]] = field(default_factory=dict)
    #: Calls rejected by a resource limit (counted, and sent to the DLQ).
    overflow: int = 0
    #: Engagement: day -> event name -> count over all users.
    days: DayCounts = field(default_factory=dict)
    #: Once-only lifecycle triggers already fired (e.g. ``pql:v3``) -> when.
    triggered: dict[str, int] = field(default_factory=dict)
    #: Open drift alerts by alert key (kind, plus user or milestone).
    alerts: dict[str, Alert] = field(default_factory=dict)
    #: Alert key -> when it was last resolved (for the cooldown).
    resolved: dict[str, int] = field(default_factory=dict)
    #: Milestone id -> when it became available to this account (the account's
    #: start, or the time of the criteria change that introduced it).
    introduced: dict[str, int] = field(default_factory=dict)
    #: The last hour (ms) the timer rules were evaluated for this account.
    swept: int = 0
    #: Derived from ``members`` for the account rules, never serialized: see
    #: :mod:`stream.core.member_index` (write members with its ``put_member``).
    member_index: MemberIndex | None = field(default=None, init=False, repr=False, compare=False)
    #: Each member's stored JSON, once the record has been written: kept in
    #: step by ``put_member``, so a write re-encodes only the members that
    #: changed. A large account's members are most of its record (1,700
    #: members: 0.4 of its 0.5 ms to encode), and one call changes one member.
    #: Held with the members dict it was built from: one replaced wholesale
    #: is encoded afresh, as is one with a member added behind ``put_member``.
    member_json: tuple[dict[str, Member], dict[str, msgspec.Raw]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    #: ``triggered`` as the record stores it, once written: a large account's
    #: once-only keys (one per user who never acted) are half its encoding
    #: time besides the members, and they change only when a trigger fires or
    #: is forgotten. Held with the dict and the size it was built from;
    #: :meth:`mark_triggered` and :meth:`forget_triggered` drop it.
    triggered_json: tuple[dict[str, int], int, msgspec.Raw] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def mark_triggered(self, key: str, at: int) -> None:
        self.triggered[key] = at
        self.triggered_json = None

    def forget_triggered(self, keys: list[str]) -> None:
        for key in keys:
            del self.triggered[key]
        if keys:
            self.triggered_json = None

    def seen(self, ts: int) -> None:
        if self.first_seen is None or ts < self.first_seen:
            self.first_seen = ts
        if self.last_seen is None or ts > self.last_seen:
            self.last_seen = ts

    def to_bytes(self) -> bytes:
        encoded = self.member_json
        if encoded is None or encoded[0] is not self.members or len(encoded[1]) != len(self.members):
            encoded = self.member_json = (self.members, {uid: member_json(m) for uid, m in self.members.items()})
        # Raw JSON where the record's types say members and a dict: msgspec
        # writes it as is (typed Any, as a cast would be checked when compiled)
        members: Any = encoded[1]
        triggered = self.triggered_json
        if triggered is None or triggered[0] is not self.triggered or triggered[1] != len(self.triggered):
            triggered = self.triggered_json = (
                self.triggered,
                len(self.triggered),
                msgspec.Raw(ENCODER.encode(self.triggered)),
            )
        triggered_raw: Any = triggered[2]
        return ENCODER.encode(
            AccountRecord(
                v=self.criteria_version,
                t=self.traits,
                f=self.first_seen,
                l=self.last_seen,
                m=members,
                e=self.events,
                w=self.wheres,
                r=self.reached,
                rate=self.rate,
                a=self.activated_at,
                ap=self.applied,
                o=self.overflow,
                d=self.days,
                tr=triggered_raw,
                al=self.alerts,
                rs=self.resolved,
                in_=self.introduced,
                sw=self.swept,
            )
        )

    @classmethod
    def from_bytes(cls, account_id: str, raw: bytes) -> AccountState:
        d = ACCOUNT_DECODER.decode(raw)
        return cls(
            account_id=account_id,
            criteria_version=d.v,
            traits=d.t,
            first_seen=d.f,
            last_seen=d.l,
            members=d.m,
            events=d.e,
            wheres=d.w,
            reached=d.r,
            rate=d.rate,
            activated_at=d.a,
            applied=d.ap,
            overflow=d.o,
            days=d.d,
            triggered=_load_triggered(d.tr),
            alerts=d.al,
            resolved=d.rs,
            introduced=d.in_,
            swept=d.sw,
        )


def _load_triggered(raw: Any) -> dict[str, int]:
    if not raw:
        return {}
    if isinstance(raw, list):  # written before triggers had times
        return dict.fromkeys(raw, 0)
    return dict(raw)
