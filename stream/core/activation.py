"""Milestone evaluation, activation rates and the change records they produce.

Pure functions over :mod:`stream.core.state`: fed an envelope (or a new
criteria version) and the current state, they mutate the state in place and
return the output records. Evaluation is always a function of the retained
tallies, so evaluating incrementally and recomputing from scratch agree.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from stream.core.activity import DayMask
from stream.core.criteria import AccountMilestone, Criteria, Scalar, UserMilestone, Where, canonical_value
from stream.core.engagement import add_event, day_of
from stream.core.envelope import Envelope
from stream.core.member_index import current_index, drop_member_index, put_member, walk_as_of
from stream.core.records import Member, Tally
from stream.core.state import (
    MAX_PROPERTY_KEYS,
    MAX_PROPERTY_VALUES,
    AccountState,
    UserState,
    is_applied,
    set_traits,
    trait,
)
from stream.core.timeutil import MS_PER_DAY, to_iso

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ActivationLimits:
    #: A repeated messageId is counted once if seen again within this much event
    #: time (relative to the user's latest event) ...
    dedupe_window_ms: int = MS_PER_DAY
    #: ... and while it is among the last ``dedupe_max_ids`` ids of the user.
    dedupe_max_ids: int = 5_000
    #: Users kept in detail per account; calls for further users are rejected
    #: with reason ``limit_exceeded`` (counted in the account's ``overflow``).
    max_users_per_account: int = 10_000
    #: Distinct event names tallied per user; a track call naming a further
    #: name is rejected with reason ``limit_exceeded`` (counted in the account's
    #: ``overflow``), never dropped: calls with names the user already has still
    #: count. Bounds the user's record (tallies, day counts, retained properties).
    max_event_names_per_user: int = 500


#: ``Outcome.detail`` of the calls each limit rejects (the DLQ's ``dlq.detail``).
USER_LIMIT_DETAIL = "per-account user limit"
EVENT_NAME_LIMIT_DETAIL = "per-user event name limit"


@dataclass(slots=True)
class Outcome:
    """What applying one envelope did: ``applied``, ``duplicate`` or ``rejected``."""

    status: str
    records: list[Record]
    reason: str = ""
    #: For ``rejected``: which limit, and its value (DLQ header ``dlq.detail``).
    detail: str = ""


# ---------------------------------------------------------------- tallies


def _matches(props: dict[str, Any], where: Where) -> bool:
    for key, want in where:
        if key not in props:
            return False
        # compared in canonical form: 2 matches 2.0, true matches True
        if canonical_value(props[key]) != canonical_value(want):
            return False
    return True


def _retain_props(user: UserState, event: str, props: dict[str, Any], ts: int) -> None:
    keys = user.props.get(event)
    if keys is None:
        keys = user.props[event] = {}
    for key, value in props.items():
        values = keys.get(key, ...)
        if values is None:
            continue  # this key overflowed: no longer retained
        if values is ...:
            if len(keys) >= MAX_PROPERTY_KEYS:
                continue
            values = keys[key] = {}
        cv = canonical_value(value)
        tally = values.get(cv)
        if tally is None:
            if len(values) >= MAX_PROPERTY_VALUES:
                keys[key] = None
                continue
            tally = values[cv] = Tally()
        tally.add(ts)


def estimate_where(user: UserState, event: str, where: Where) -> Tally:
    """A tally for a ``where`` filter nobody tracked when the events arrived.

    Exact for a one-key filter whose key was retained; for several keys, the
    smallest single-key tally (an upper bound of the joint count).
    """
    keys = user.props.get(event, {})
    best: Tally | None = None
    for key, want in where:
        values = keys.get(key)
        tally = values.get(canonical_value(want)) if values else None
        if tally is None:
            return Tally()
        if best is None or tally.n < best.n:
            best = tally
    return best.copy() if best is not None else Tally()


def _user_tally(user: UserState, event: str, where: Where, sig: str) -> Tally | None:
    if not where:
        return user.events.get(event)
    return user.wheres.get(sig)


def _account_tally(state: AccountState, event: str, where: Where, sig: str) -> Tally | None:
    if not where:
        return state.events.get(event)
    return state.wheres.get(sig)


def ensure_where_tallies(state: AccountState, users: dict[str, UserState], criteria: Criteria) -> None:
    """Give every ``where`` signature of ``criteria`` a tally, estimated from the
    retained properties when it was not tracked before (new criteria)."""
    wanted = {sig for pairs in criteria.index.wheres_by_event.values() for sig, _ in pairs}
    # A filter dropped by this version stops being counted; if a later version
    # brings it back its tally must be re-estimated, not resumed with a gap.
    for stale in [sig for sig in state.wheres if sig not in wanted]:
        del state.wheres[stale]
    for user in users.values():
        for stale in [sig for sig in user.wheres if sig not in wanted]:
            del user.wheres[stale]
    for event, pairs in criteria.index.wheres_by_event.items():
        for sig, where in pairs:
            if sig in state.wheres:
                continue
            total = Tally()
            for user in users.values():
                t = user.wheres.get(sig)
                if t is None:
                    t = user.wheres[sig] = estimate_where(user, event, where)
                total.merge(t)
            state.wheres[sig] = total


# ------------------------------------------------------------- evaluation


def evaluate_user(user: UserState, criteria: Criteria) -> dict[str, int]:
    reached: dict[str, int] = {}
    for m in criteria.user_milestones:
        tally = _user_tally(user, m.event, m.where, m.signature)
        at = tally.time_of(m.min_count) if tally is not None else None
        if at is not None:
            reached[m.id] = at
    return reached


def _account_rule(state: AccountState, m: AccountMilestone, before: int | None = None) -> int | None:
    """When the account reached ``m`` (None: not reached). With ``before``, as
    of that time: only members known and milestones reached before it count,
    so a sweep's answer does not depend on how far past its midnight the
    partition had got when it ran."""
    if m.event is not None:
        tally = _account_tally(state, m.event, m.where, m.signature)
        at = tally.time_of(m.min_count) if tally is not None else None
        return None if at is None or (before is not None and at >= before) else at
    assert m.user_milestone is not None
    if before is None:  # per applied call: from the maintained aggregate, not a walk
        agg = current_index(state).aggregate(m.user_milestone, m.role)
        population, times = agg.population, agg.times
    else:
        population, times = walk_as_of(state, m.user_milestone, m.role, before)
    if m.min_users is not None:
        need = m.min_users
    else:
        assert m.min_share is not None
        if population == 0:
            return None
        need = max(1, math.ceil(m.min_share * population - 1e-9))
    if len(times) < need:
        return None
    return times[need - 1]


def account_reached_as_of(state: AccountState, criteria: Criteria, before: int) -> dict[str, int]:
    """The account milestones reached before ``before``, judged on what was
    known then (members who joined later do not dilute a share)."""
    reached: dict[str, int] = {}
    for m in criteria.account_milestones:
        at = _account_rule(state, m, before)
        if at is not None:
            reached[m.id] = at
    return reached


def evaluate_account(state: AccountState, criteria: Criteria) -> dict[str, int]:
    reached: dict[str, int] = {}
    for m in criteria.account_milestones:
        at = _account_rule(state, m)
        if at is not None:
            reached[m.id] = at
    return reached


def rate_of(reached: dict[str, int], ids: tuple[str, ...]) -> float:
    if not ids:
        return 0.0
    return round(sum(1 for i in ids if i in reached) / len(ids), 6)


def activated_at_of(reached: dict[str, int], ids: tuple[str, ...], criteria: Criteria) -> int | None:
    """Time of the milestone that took the rate to the threshold."""
    need = criteria.activation_count(len(ids))
    times = sorted(reached[i] for i in ids if i in reached)
    return times[need - 1] if need and len(times) >= need else None


# ----------------------------------------------------------------- records


def record_id(*parts: object) -> str:
    return hashlib.sha256("|".join("" if p is None else str(p) for p in parts).encode()).hexdigest()[:32]


def _time_to_activate(activated_at: int | None, base: int | None) -> float | None:
    if activated_at is None or base is None:
        return None
    return max(0.0, (activated_at - base) / 1000)


def _changes(
    *,
    level: str,
    account_id: str,
    user_id: str | None,
    ids: tuple[str, ...],
    old_reached: dict[str, int],
    new_reached: dict[str, int],
    old_rate: float,
    new_rate: float,
    old_activated: int | None,
    new_activated: int | None,
    base: int | None,
    criteria: Criteria,
    reason: str,
    cause: str,
    event_time: int,
) -> list[Record]:
    reached_now = [mid for mid in ids if mid in new_reached and mid not in old_reached]
    flipped = (old_activated is None) != (new_activated is None)
    if not reached_now and new_rate == old_rate and not flipped:
        return []  # most calls change nothing: no record to build
    missing = [i for i in ids if i not in new_reached]
    out: list[Record] = []

    def rec(kind: str, milestone: str | None = None) -> None:
        out.append(
            {
                "id": record_id(kind, level, account_id, user_id, milestone, criteria.version, reason, cause),
                "kind": kind,
                "level": level,
                "account_id": account_id,
                "user_id": user_id,
                "milestone": milestone,
                "old_rate": old_rate,
                "new_rate": new_rate,
                "missing": missing,
                "criteria_version": criteria.version,
                "reason": reason,
                "event_time": to_iso(event_time),
                "activated_at": to_iso(new_activated),
                "time_to_activate_seconds": _time_to_activate(new_activated, base),
            }
        )

    for mid in reached_now:
        rec("milestone_reached", mid)
    if new_rate != old_rate:
        rec("activation_changed")
    if flipped:
        rec("activated" if new_activated is not None else "deactivated")
    return out


def user_base_time(user: UserState) -> int | None:
    created = trait(user.traits, "created_at")
    return created if created is not None else user.first_seen


def account_base_time(state: AccountState) -> int | None:
    created = trait(state.traits, "created_at")
    return created if created is not None else state.first_seen


def _reevaluate_user(
    state: AccountState, user: UserState, criteria: Criteria, reason: str, cause: str, event_time: int
) -> list[Record]:
    ids = criteria.user_milestone_ids
    new_reached = evaluate_user(user, criteria)
    new_rate = rate_of(new_reached, ids)
    new_activated = activated_at_of(new_reached, ids, criteria)
    records = _changes(
        level="user",
        account_id=state.account_id,
        user_id=user.user_id,
        ids=ids,
        old_reached=user.reached,
        new_reached=new_reached,
        old_rate=user.rate,
        new_rate=new_rate,
        old_activated=user.activated_at,
        new_activated=new_activated,
        base=user_base_time(user),
        criteria=criteria,
        reason=reason,
        cause=cause,
        event_time=event_time,
    )
    user.reached, user.rate, user.activated_at = new_reached, new_rate, new_activated
    return records


def _reevaluate_account(
    state: AccountState, criteria: Criteria, reason: str, cause: str, event_time: int
) -> list[Record]:
    ids = criteria.account_milestone_ids
    new_reached = evaluate_account(state, criteria)
    new_rate = rate_of(new_reached, ids)
    new_activated = activated_at_of(new_reached, ids, criteria)
    records = _changes(
        level="account",
        account_id=state.account_id,
        user_id=None,
        ids=ids,
        old_reached=state.reached,
        new_reached=new_reached,
        old_rate=state.rate,
        new_rate=new_rate,
        old_activated=state.activated_at,
        new_activated=new_activated,
        base=account_base_time(state),
        criteria=criteria,
        reason=reason,
        cause=cause,
        event_time=event_time,
    )
    state.reached, state.rate, state.activated_at = new_reached, new_rate, new_activated
    return records


# ------------------------------------------------------------------ apply


def new_account(account_id: str, criteria: Criteria) -> AccountState:
    return AccountState(account_id=account_id, criteria_version=criteria.version)


def new_user(account_id: str, user_id: str) -> UserState:
    return UserState(account_id=account_id, user_id=user_id)


def _is_duplicate_id(user: UserState, message_id: str, ts: int, limits: ActivationLimits) -> bool:
    seen = user.seen_ids
    if message_id in seen:
        return True
    seen[message_id] = ts
    if len(seen) > limits.dedupe_max_ids:
        horizon = (user.last_seen or ts) - limits.dedupe_window_ms
        keep = sorted(((t, m) for m, t in seen.items() if t >= horizon), reverse=True)
        keep = keep[: int(limits.dedupe_max_ids * 0.9)]
        user.seen_ids = {m: t for t, m in keep}
    return False


def first_key_time(user: UserState, criteria: Criteria) -> int | None:
    first: int | None = None
    for event in criteria.key_events:  # a handful, where a user has many event names
        tally = user.events.get(event)
        if tally is not None and tally.times and (first is None or tally.times[0] < first):
            first = tally.times[0]
    return first


def rebuild_key_days(user: UserState, criteria: Criteria) -> None:
    """Key days from the retained day counts (the key events may have changed)."""
    user.key = DayMask()
    for day, counts in user.days.items():
        if any(e in criteria.key_events for e in counts):
            user.key.add(day)


def _sync_member(state: AccountState, user: UserState, criteria: Criteria) -> bool:
    """Copy what account rules, timer rules and KPIs need from the user.

    Returns True when an account rule may now answer differently: a new member,
    or a new role or milestone (all the member index aggregates). Most calls
    only add an active day, which timer rules and KPIs read at the next sweep
    or query but no account rule does, so the account is not re-evaluated for
    it.
    """
    member = state.members.get(user.user_id)
    fresh = Member(
        user.role,
        dict(user.reached),
        user.activated_at is not None,
        user.rate,
        user_base_time(user),
        first_key_time(user, criteria),
        user.activated_at,
        user.active.copy(),
        user.key.copy(),
    )
    if member == fresh:
        return False
    put_member(state, user.user_id, fresh)
    return member is None or member.role != fresh.role or member.reached != fresh.reached


def _introduce(state: AccountState, criteria: Criteria, at_ms: int) -> None:
    """Remember when each milestone became available to the account: 0 for
    those it had from its start, else the time of the criteria change that
    introduced it (so "N days after it became available" is well defined)."""
    for mid in (*criteria.user_milestone_ids, *criteria.account_milestone_ids):
        state.introduced.setdefault(mid, at_ms)


def apply_envelope(
    state: AccountState,
    user: UserState,
    env: Envelope,
    criteria: Criteria,
    limits: ActivationLimits | None = None,
) -> Outcome:
    """Apply one call to its account's and its user's state (in place).

    The user half and the account half are each skipped when their own
    idempotency mark shows them applied, so a replay after a crash between the
    two writes completes the missing half and never doubles the other.
    """
    limits = limits or ActivationLimits()
    if env.user_id not in state.members and len(state.members) >= limits.max_users_per_account:
        # Decided before the user's record is touched: a user past the limit
        # gets no record at all (the caller need not store it).
        if is_applied(state.applied, env.lane, env.position):
            return Outcome("duplicate", [])  # rejected when first read
        state.overflow += 1
        detail = f"{USER_LIMIT_DETAIL}: the account already has {limits.max_users_per_account} users"
        return Outcome("rejected", [], "limit_exceeded", detail)
    user_done = is_applied(user.applied, env.lane, env.position)
    account_done = is_applied(state.applied, env.lane, env.position)
    if user_done and account_done:
        return Outcome("duplicate", [])
    if (
        not user_done
        and env.message_id is not None
        and _is_duplicate_id(user, f"{env.kind}:{env.message_id}", env.ts, limits)
    ):
        return Outcome("duplicate", [])
    if env.kind == "track" and env.event not in user.events and len(user.events) >= limits.max_event_names_per_user:
        # Rejected whole (neither half applied), so user and account tallies
        # stay sums of the same calls and the DLQ holds the call to republish.
        if not account_done:
            state.overflow += 1
        detail = f"{EVENT_NAME_LIMIT_DETAIL}: the user already has {limits.max_event_names_per_user} event names"
        return Outcome("rejected", [], "limit_exceeded", detail)

    cause, ts = env.cause, env.ts
    records: list[Record] = []
    account_dirty = False

    if env.kind == "track":
        assert env.event is not None
        event = env.event
        if not user_done:
            user.seen(ts)
            _tally_track(user.events, user.wheres, event, env.props, ts, criteria)
            add_event(user.days, ts, event)
            user.active.add(day_of(ts))
            if event in criteria.key_events:
                user.key.add(day_of(ts))
            if env.props:
                _retain_props(user, event, env.props, ts)
            if event in criteria.index.user_by_event:
                records += _reevaluate_user(state, user, criteria, "event", cause, ts)
        if not account_done:
            state.seen(ts)
            _tally_track(state.events, state.wheres, event, env.props, ts, criteria)
            add_event(state.days, ts, event)
            account_dirty = event in criteria.index.account_by_event
    elif env.kind == "group":
        if not account_done:
            state.seen(ts)
            if set_traits(state.traits, env.traits, ts) and "created_at" in env.traits:
                account_dirty = True  # the time-to-activate base moved
    elif env.kind in ("identify", "traits") and not user_done:
        if env.kind == "identify":
            set_traits(user.traits, env.traits, ts)
        else:  # replayed by the directory: each trait carries its own time
            for key, (value, at) in env.traits.items():
                set_traits(user.traits, {key: value}, at)
        if "created_at" in env.traits:
            records += _reevaluate_user(state, user, criteria, "event", cause, ts)

    if not account_done:
        if not state.introduced:
            _introduce(state, criteria, 0)
        if _sync_member(state, user, criteria):
            account_dirty = True
        if account_dirty:
            records += _reevaluate_account(state, criteria, "event", cause, ts)
    return Outcome("applied", records)


def _tally_track(
    events: dict[str, Tally], wheres: dict[str, Tally], event: str, props: dict[str, Any], ts: int, criteria: Criteria
) -> None:
    tally = events.get(event)
    if tally is None:
        tally = events[event] = Tally()
    tally.add(ts)
    for sig, where in criteria.index.wheres_by_event.get(event, ()):
        if _matches(props, where):
            tally = wheres.get(sig)
            if tally is None:
                tally = wheres[sig] = Tally()
            tally.add(ts)


def recompute(state: AccountState, users: dict[str, UserState], criteria: Criteria, at_ms: int) -> list[Record]:
    """Re-evaluate the account and all its users under (new) ``criteria``.

    The living baseline: a milestone added today counts for users who did it
    last month, because evaluation reads the retained tallies.
    """
    cause = f"criteria:{criteria.version}"
    ensure_where_tallies(state, users, criteria)
    _introduce(state, criteria, at_ms)
    drop_member_index(state)  # every member may change: one walk on the next evaluation instead
    records: list[Record] = []
    for user in users.values():
        records += _reevaluate_user(state, user, criteria, "criteria_changed", cause, at_ms)
        rebuild_key_days(user, criteria)
        _sync_member(state, user, criteria)
    records += _reevaluate_account(state, criteria, "criteria_changed", cause, at_ms)
    state.criteria_version = criteria.version
    return records


def rebuild_account_tallies(users: dict[str, UserState]) -> tuple[dict[str, Tally], dict[str, Tally]]:
    """Account-wide tallies recomputed from the users (the incremental ones must equal these)."""
    events: dict[str, Tally] = {}
    wheres: dict[str, Tally] = {}
    for user in users.values():
        for src, dst in ((user.events, events), (user.wheres, wheres)):
            for key, tally in src.items():
                dst.setdefault(key, Tally()).merge(tally)
    return events, wheres


def milestone_definitions(criteria: Criteria) -> Iterable[UserMilestone | AccountMilestone]:
    yield from criteria.user_milestones
    yield from criteria.account_milestones


__all__ = [
    "EVENT_NAME_LIMIT_DETAIL",
    "USER_LIMIT_DETAIL",
    "ActivationLimits",
    "Outcome",
    "Record",
    "Scalar",
    "account_reached_as_of",
    "apply_envelope",
    "evaluate_account",
    "evaluate_user",
    "new_account",
    "new_user",
    "recompute",
    "record_id",
]
