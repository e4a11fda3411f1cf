"""Re-keying: from input calls (keyed however producers chose) to accounts.

Two hops keep all of an account's state on one partition whatever the input key:

* ``route_call`` (first hop, on the input topic) sends a call that names its
  account straight to the account-keyed topic, and everything about users
  (identify traits, group memberships, track calls naming no account) to the
  user-keyed topic;
* ``UserDirectory`` (second hop, keyed by user) remembers each user's accounts
  and traits, and forwards what it learns to the right accounts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.core.envelope import Envelope
from stream.core.records import Traits
from stream.core.segment import Event
from stream.core.state import is_applied, set_traits

#: Directory keys of visitors (anonymousIds), beside the users' own keys.
VISITOR_PREFIX = "~anon:"

#: Where an envelope goes next.
TO_ACCOUNT = "account"
TO_USER = "user"


def direct_lane(topic: str, partition: int) -> str:
    return f"d:{topic}:{partition}"


def user_lane(user_partition: int, inner_lane: str) -> str:
    return f"u{user_partition}:{inner_lane}"


def lane_source(lane: str) -> tuple[str, int]:
    """(input topic, partition) a lane started from: ``u3:d:topic:0`` -> (topic, 0)."""
    inner = lane.split(":", 1)[1] if lane.startswith("u") else lane
    _direct, rest = inner.split(":", 1)
    topic, _, partition = rest.rpartition(":")
    return topic, int(partition)


def route_call(event: Event, topic: str, partition: int, offset: int, lane_max: int = 0) -> list[tuple[str, Envelope]]:
    """Where one decoded call goes from the input topic (``lane_max``: the
    partition's highest event time so far, this call included)."""
    lane = direct_lane(topic, partition)
    index = -1 if event.index is None else event.index

    def env(kind: str, account: str) -> Envelope:
        return Envelope(
            kind=kind,
            account_id=account,
            user_id=event.user_id,
            ts=event.timestamp_ms,
            lane=lane,
            offset=offset,
            index=index,
            message_id=event.message_id,
            event=event.event,
            props=event.properties,
            traits=event.traits,
            lm=max(lane_max, event.timestamp_ms),
        )

    out: list[tuple[str, Envelope]] = []
    if event.anonymous_id:
        # visitor -> signup: a call with only an anonymousId is a visit; one
        # with both ids links the visitor to the user who signed up
        visit = env("link" if event.user_id else "visit", "")
        visit.user_id = VISITOR_PREFIX + event.anonymous_id
        visit.traits = {"user_id": event.user_id} if event.user_id else {}
        visit.props, visit.event = {}, None
        out.append((TO_USER, visit))
    if not event.user_id or event.type in ("page", "screen"):
        return out
    return out + _route_user_call(event, env)


def _route_user_call(event: Event, env: Any) -> list[tuple[str, Envelope]]:
    if event.type == "track":
        if event.account_id is not None:
            return [(TO_ACCOUNT, env("track", event.account_id))]
        e = env("track", "")
        e.raw = event.raw.decode("utf-8") if event.raw is not None else None
        return [(TO_USER, e)]
    if event.type == "group":
        assert event.account_id is not None
        return [(TO_ACCOUNT, env("group", event.account_id)), (TO_USER, env("group", event.account_id))]
    # identify: the directory knows every account of the user
    return [(TO_USER, env("identify", event.account_id or ""))]


@dataclass(slots=True)
class DirectoryEntry:
    """What the directory knows about one user."""

    #: account id -> event time of the latest group call naming it
    accounts: dict[str, int] = field(default_factory=dict)
    traits: Traits = field(default_factory=dict)
    #: input lane -> [offset, index] of the last call applied (idempotency)
    applied: dict[str, list[int]] = field(default_factory=dict)
    #: Track calls that named no account, parked until a group call names one.
    pending: list[dict[str, Any]] = field(default_factory=list)

    def latest_account(self) -> str | None:
        if not self.accounts:
            return None
        return max(self.accounts.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def to_bytes(self) -> bytes:
        return orjson.dumps({"a": self.accounts, "t": self.traits, "ap": self.applied, "q": self.pending})

    @classmethod
    def from_bytes(cls, raw: bytes | None) -> DirectoryEntry:
        if not raw:
            return cls()
        d: dict[str, Any] = orjson.loads(raw)
        return cls(accounts=d["a"], traits=d["t"], applied=d["ap"], pending=d.get("q", []))


@dataclass(frozen=True, slots=True)
class ParkingLimits:
    """How long a call naming no account waits for the user's group call.

    Calls on different input partitions race: a user's first track call can
    arrive before the group call that names the account. Such calls wait (in
    event time: until every input partition has been read ``grace_ms`` past
    them, see :mod:`stream.core.parking`) instead of being rejected at once.
    """

    grace_ms: int = 7 * 86_400_000
    max_parked_per_user: int = 1_000


@dataclass(slots=True)
class DirectoryOutcome:
    forward: list[Envelope]
    #: Calls that cannot reach any account (DLQ reason ``no_account``).
    rejected: list[Envelope] = field(default_factory=list)
    duplicate: bool = False


def apply_to_directory(
    entry: DirectoryEntry, env: Envelope, user_partition: int, parking: ParkingLimits | None = None
) -> DirectoryOutcome:
    """Update the user's entry and say which account envelopes to send on."""
    parking = parking or ParkingLimits()
    lane = user_lane(user_partition, env.lane)
    if is_applied(entry.applied, env.lane, env.position):
        # Re-sent by the first hop after a restart: already forwarded.
        return DirectoryOutcome([], duplicate=True)
    if env.kind == "visit":  # a visitor's entry: its first visit ...
        first = entry.traits.get("first_visit")
        if first is None or env.ts < first[1]:
            entry.traits["first_visit"] = [env.ts, env.ts]
        return DirectoryOutcome([])
    if env.kind == "link":  # ... and its earliest call as a signed-up user
        signup = entry.traits.get("signup")
        if signup is None or env.ts < signup[1]:
            entry.traits["signup"] = [env.traits.get("user_id"), env.ts]
        return DirectoryOutcome([])

    def forward(kind: str, account: str, traits: dict[str, Any] | None = None) -> Envelope:
        return Envelope(
            kind=kind,
            account_id=account,
            user_id=env.user_id,
            ts=env.ts,
            lane=lane,
            offset=env.offset,
            index=env.index,
            message_id=env.message_id,
            event=env.event,
            props=env.props,
            traits=env.traits if traits is None else traits,
            lm=env.lm,
        )

    if env.kind == "group":
        known = env.account_id in entry.accounts
        if not known or env.ts > entry.accounts[env.account_id]:
            entry.accounts[env.account_id] = env.ts
        out: list[Envelope] = []
        if not known and entry.traits:
            # The account learns the user's traits it missed (identify came
            # first); each trait keeps the event time that set it.
            replay = forward("traits", env.account_id, {k: list(v) for k, v in entry.traits.items()})
            replay.ts = max(v[1] for v in entry.traits.values())
            replay.message_id = None
            out.append(replay)
        for n, parked in enumerate(entry.pending, start=1):
            # Released calls take their place in the lane right after this
            # group call: their own offsets may be behind what the account has
            # already applied from this lane (other users' calls).
            call = Envelope.from_dict(parked)
            call.account_id = env.account_id
            call.raw = None
            # Its lateness stays its own (``lm``: how far its input partition
            # had got when it was read): whether it waited here at all depends
            # on how partitions interleaved, which must not decide its fate.
            call.lane, call.offset, call.index, call.sub = lane, env.offset, env.index, n
            out.append(call)
        entry.pending = []
        return DirectoryOutcome(out)
    if env.kind == "identify":
        set_traits(entry.traits, env.traits, env.ts)
        if env.account_id and env.account_id not in entry.accounts:
            entry.accounts[env.account_id] = env.ts
        return DirectoryOutcome([forward("identify", a) for a in sorted(entry.accounts)])
    if env.kind == "track":
        account = entry.latest_account()
        if account is not None:
            return DirectoryOutcome([forward("track", account)])
        waiting = forward("track", "")
        waiting.raw = env.raw
        entry.pending.append(waiting.to_dict())
        # past the bound, the oldest gives up at once (its grace: stream.core.parking)
        if len(entry.pending) > parking.max_parked_per_user:
            return DirectoryOutcome([], rejected=[Envelope.from_dict(entry.pending.pop(0))])
        return DirectoryOutcome([])
    return DirectoryOutcome([], rejected=[env])


def visitor_counts(entries: Any) -> tuple[int, int]:
    """(visitors, converted) over visitor entries: a visitor had an anonymous
    visit; converted, it was later (at or after its first visit) linked to a
    user. Exact: one directory entry per anonymousId."""
    visitors = converted = 0
    for entry in entries:
        first = entry.traits.get("first_visit")
        if first is None:
            continue
        visitors += 1
        signup = entry.traits.get("signup")
        if signup is not None and signup[1] >= first[1]:
            converted += 1
    return visitors, converted
