"""Per-account aggregates behind the account rules defined on user milestones.

A rule such as "3 users (or 30% of the known users, or one executive) reached
``report_created``" needs, per (user milestone, role): how many members the
rule counts, and the reach times in order. Walking every member for that on
each applied call made a call to an account of N users cost ~3N steps, and
the largest accounts are also the busiest. Instead the answers are kept
sorted and moved in O(log N) when one member changes.

The index is derived data: never serialized (the record format is unchanged),
built on the first evaluation after a load by one walk, then maintained by
:func:`put_member`, the one way members are written, so it is only as good as
that discipline. Some breaches are caught and answered with a rebuild: a
members dict replaced wholesale, a member added behind its back (the count
moves), an update that finds a reach time it never indexed. A member replaced
directly under an existing id is not: it must go through :func:`put_member`.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass, field

from stream.core.records import Member, member_json
from stream.core.state import AccountState


@dataclass(slots=True)
class Aggregate:
    """The members one (user milestone, role) rule counts: how many, and the
    times at which those who reached the milestone did, ascending (the
    ``need``-th smallest is the rule's answer)."""

    population: int = 0
    times: list[int] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class MemberIndex:
    members: dict[str, Member]
    #: Members accounted for: differs from ``len(members)`` if a member was
    #: added behind :func:`put_member`'s back (then the index is rebuilt).
    size: int
    aggregates: dict[tuple[str, str | None], Aggregate] = field(default_factory=dict)
    #: Set when an update found the aggregates disagreeing with the members.
    broken: bool = False

    def aggregate(self, milestone: str, role: str | None) -> Aggregate:
        """Built by one walk the first time a rule asks (after a load, or for a
        rule a new criteria version brought), kept up to date afterwards."""
        key = (milestone, role)
        agg = self.aggregates.get(key)
        if agg is None:
            agg = self.aggregates[key] = Aggregate()
            for member in self.members.values():
                if role is None or member.role == role:
                    agg.population += 1
                    at = member.reached.get(milestone)
                    if at is not None:
                        agg.times.append(at)
            agg.times.sort()
        return agg

    def replace(self, old: Member | None, new: Member) -> None:
        if old is None:
            self.size += 1
        for (milestone, role), agg in self.aggregates.items():
            was = old is not None and (role is None or old.role == role)
            now = role is None or new.role == role
            agg.population += now - was
            before = old.reached.get(milestone) if was and old is not None else None
            after = new.reached.get(milestone) if now else None
            if before == after:
                continue
            times = agg.times
            if before is not None:
                i = bisect_left(times, before)
                if i == len(times) or times[i] != before:
                    self.broken = True  # not what was indexed: written behind our back
                    return
                del times[i]
            if after is not None:
                insort(times, after)


def current_index(state: AccountState) -> MemberIndex:
    """The account's index, (re)built when missing or not to be trusted."""
    index = state.member_index
    if index is None or index.broken or index.members is not state.members or index.size != len(state.members):
        index = state.member_index = MemberIndex(state.members, len(state.members))
    return index


def put_member(state: AccountState, user_id: str, member: Member) -> None:
    """Set (add or replace) a member, keeping the index and the member's
    stored JSON in step."""
    members = state.members
    old = members.get(user_id)
    members[user_id] = member
    encoded = state.member_json
    if encoded is not None and encoded[0] is members:
        encoded[1][user_id] = member_json(member)
    index = state.member_index
    if index is not None and index.members is members:
        index.replace(old, member)


def drop_member_index(state: AccountState) -> None:
    """Forget the index (rebuilt on the next evaluation): cheaper than keeping
    it in step when every member is rewritten at once, and it sheds the
    aggregates of rules a new criteria version no longer has."""
    state.member_index = None


def walk_as_of(state: AccountState, milestone: str, role: str | None, before: int) -> tuple[int, list[int]]:
    """A rule's population and sorted reach times as of ``before``. Left a walk:
    the sweeps that ask run once per account and midnight, and walk the
    members for their own rules anyway."""
    population = 0
    times: list[int] = []
    for member in state.members.values():
        if role is not None and member.role != role:
            continue
        if member.since is None or member.since >= before:
            continue
        population += 1
        at = member.reached.get(milestone)
        if at is not None and at < before:
            times.append(at)
    times.sort()
    return population, times
