"""Per-account and per-user state: retained event counts and activation.

An account record holds the account-wide tallies and, per member, just what
account rules need (role, milestones reached); each user's detail is a record
of its own. Each record carries its own idempotency marks (the highest applied
input offsets per lane), so the two writes an event causes need not be atomic:
a replay re-applies exactly the half that was lost. State is built from facts that do not depend on arrival order:
counts, the smallest event times, and per-key "latest event time wins" traits;
so the same set of events gives the same state in any order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import msgspec

from stream.core.activity import DayMask
from stream.core.engagement import DayCounts

if TYPE_CHECKING:
    from stream.core.member_index import MemberIndex

#: How many of the earliest event times a tally keeps. A milestone needing
#: ``min_count`` <= TALLY_TIMES events gets an exact, order-independent reach
#: time; above that, the latest event time is used (an upper bound).
TALLY_TIMES = 16
#: Per user and event name: property keys, and values per key, retained so a
#: ``where`` filter added by a later criteria version counts past events.
MAX_PROPERTY_KEYS = 8
MAX_PROPERTY_VALUES = 8


class Tally(msgspec.Struct, array_like=True, gc=False):
    """How many times something happened, and the earliest times it did.

    Stored as ``[n, times, last]``. Tallies, members, day masks and alerts are
    structs so that a record is encoded and decoded in C (a worker does it for
    every account and user a batch touches), and the first three are untracked
    by the cycle collector: they hold numbers and lists of numbers.
    """

    n: int = 0
    times: list[int] = []
    last: int = 0

    def add(self, ts: int) -> None:
        self.n += 1
        times = self.times
        if len(times) < TALLY_TIMES or ts < times[-1]:
            bisect.insort(times, ts)
            if len(times) > TALLY_TIMES:
                times.pop()
        if ts > self.last:
            self.last = ts

    def time_of(self, k: int) -> int | None:
        """Event time at which the count reached ``k`` (None if it has not)."""
        if self.n < k:
            return None
        return self.times[k - 1] if k <= len(self.times) else self.last

    def merge(self, other: Tally) -> None:
        self.n += other.n
        self.times = sorted(self.times + other.times)[:TALLY_TIMES]
        self.last = max(self.last, other.last)

    def copy(self) -> Tally:
        return Tally(self.n, list(self.times), self.last)


#: A trait value with the event time that set it: ``[value, ts]``.
Traits = dict[str, list[Any]]


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
        return _ENCODER.encode(
            _UserRecord(
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
        d = _USER_DECODER.decode(raw)
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


class Member(msgspec.Struct, array_like=True, gc=False):
    """What the account needs to know of a user: enough for account rules,
    timer rules and KPIs, so a sweep or a KPI query reads one record per
    account instead of one per user. Stored as an array; one written before
    timer rules existed has only the first four entries."""

    role: str | None = None
    reached: dict[str, int] = {}
    activated: bool = False
    rate: float = 0.0
    #: Signup time: the ``created_at`` trait, else the first event.
    since: int | None = None
    #: Earliest key event.
    first_key: int | None = None
    activated_at: int | None = None
    active: DayMask = msgspec.field(default_factory=DayMask)
    key: DayMask = msgspec.field(default_factory=DayMask)


class Alert(msgspec.Struct, array_like=True):
    """An open drift alert: what was published last for it."""

    kind: str
    severity: str
    opened_at: int
    user_id: str | None = None
    milestone: str | None = None
    evidence: dict[str, Any] = {}


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
        members = encoded[1]
        triggered = self.triggered_json
        if triggered is None or triggered[0] is not self.triggered or triggered[1] != len(self.triggered):
            triggered = self.triggered_json = (
                self.triggered,
                len(self.triggered),
                msgspec.Raw(_ENCODER.encode(self.triggered)),
            )
        return _ENCODER.encode(
            _AccountRecord(
                v=self.criteria_version,
                t=self.traits,
                f=self.first_seen,
                l=self.last_seen,
                m=cast("dict[str, Member]", members),  # each member's JSON, written as the member
                e=self.events,
                w=self.wheres,
                r=self.reached,
                rate=self.rate,
                a=self.activated_at,
                ap=self.applied,
                o=self.overflow,
                d=self.days,
                tr=cast("dict[str, int]", triggered[2]),
                al=self.alerts,
                rs=self.resolved,
                in_=self.introduced,
                sw=self.swept,
            )
        )

    @classmethod
    def from_bytes(cls, account_id: str, raw: bytes) -> AccountState:
        d = _ACCOUNT_DECODER.decode(raw)
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


def member_json(member: Member) -> msgspec.Raw:
    """A member as its account record stores it."""
    return msgspec.Raw(_ENCODER.encode(member))


def _load_triggered(raw: Any) -> dict[str, int]:
    if not raw:
        return {}
    if isinstance(raw, list):  # written before triggers had times
        return dict.fromkeys(raw, 0)
    return dict(raw)


# ------------------------------------------------------------------ records
# The stored layout of the two records, one definition for writing and reading:
# a JSON object under short keys, read straight into tallies, members, day
# masks and alerts (no intermediate dicts and lists); a key missing from an
# older record takes its default.


class _UserRecord(msgspec.Struct):
    t: Traits = {}
    f: int | None = None
    l: int | None = None  # noqa: E741 (the stored key)
    e: dict[str, Tally] = {}
    w: dict[str, Tally] = {}
    p: dict[str, dict[str, dict[str, Tally] | None]] = {}
    r: dict[str, int] = {}
    rate: float = 0.0
    a: int | None = None
    ap: dict[str, list[int]] = {}
    s: dict[str, int] = {}
    d: dict[int, dict[str, int]] = {}
    am: DayMask = msgspec.field(default_factory=DayMask)
    km: DayMask = msgspec.field(default_factory=DayMask)


class _AccountRecord(msgspec.Struct):
    v: int = 0
    t: Traits = {}
    f: int | None = None
    l: int | None = None  # noqa: E741 (the stored key)
    m: dict[str, Member] = {}
    e: dict[str, Tally] = {}
    w: dict[str, Tally] = {}
    r: dict[str, int] = {}
    rate: float = 0.0
    a: int | None = None
    ap: dict[str, list[int]] = {}
    o: int = 0
    d: dict[int, dict[str, int]] = {}
    #: A list in records written before triggers had times.
    tr: dict[str, int] | list[str] | None = None
    al: dict[str, Alert] = {}
    rs: dict[str, int] = {}
    in_: dict[str, int] = msgspec.field(default_factory=dict, name="in")
    sw: int = 0


_ENCODER = msgspec.json.Encoder()
_USER_DECODER = msgspec.json.Decoder(_UserRecord)
_ACCOUNT_DECODER = msgspec.json.Decoder(_AccountRecord)
