"""The stored records: their msgspec types, and the one encoder and decoders.

Tallies, members, day masks and alerts are msgspec Structs so that a record is
encoded and decoded in C. msgspec needs them to be its own classes, so this
module stays interpreted when the core is compiled (setup.py), and the state
objects that hold them (stream.core.state) are compiled.
"""

from __future__ import annotations

import bisect
from typing import Any

import msgspec

from stream.core.activity import DayMask

#: How many of the earliest event times a tally keeps. A milestone needing
#: ``min_count`` <= TALLY_TIMES events gets an exact, order-independent reach
#: time; above that, the latest event time is used (an upper bound).
TALLY_TIMES = 16


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


def member_json(member: Member) -> msgspec.Raw:
    """A member as its account record stores it."""
    return msgspec.Raw(ENCODER.encode(member))


# ------------------------------------------------------------------ records
# The stored layout of the two records, one definition for writing and reading:
# a JSON object under short keys, read straight into tallies, members, day
# masks and alerts (no intermediate dicts and lists); a key missing from an
# older record takes its default.


class UserRecord(msgspec.Struct):
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


class AccountRecord(msgspec.Struct):
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


ENCODER = msgspec.json.Encoder()
USER_DECODER = msgspec.json.Decoder(UserRecord)
ACCOUNT_DECODER = msgspec.json.Decoder(AccountRecord)
