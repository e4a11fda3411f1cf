"""Account rules on user milestones, answered from the maintained member index,
against a plain walk over the members (what evaluation did before the index)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.activation import account_reached_as_of, evaluate_account
from stream.core.criteria import AccountMilestone, Criteria, parse_criteria
from stream.core.member_index import Aggregate, MemberIndex, current_index, put_member
from stream.core.records import Member
from stream.core.replay import OfflinePipeline
from stream.core.state import AccountState
from tests.core.helpers import NO_LATENESS, T0, group, identify, track

MILESTONES = ("m1", "m2")
ROLES = (None, "admin", "executive")
USERS = tuple(f"u{i}" for i in range(6))


def minute(n: int) -> int:
    return int(T0.timestamp() * 1000) + n * 60_000


def make_criteria(rules: list[dict[str, Any]], version: int = 1) -> Criteria:
    return parse_criteria(
        {
            "version": version,
            # m2 needs two events: an earlier event arriving late moves its reach time
            "user_milestones": [{"id": "m1", "event": "E1"}, {"id": "m2", "event": "E2", "min_count": 2}],
            "account_milestones": [{"id": f"r{i}", **rule} for i, rule in enumerate(rules)],
        }
    )


def brute_rule(state: AccountState, m: AccountMilestone, before: int | None = None) -> int | None:
    assert m.user_milestone is not None
    counted = [
        mem
        for mem in state.members.values()
        if (m.role is None or mem.role == m.role) and (before is None or (mem.since is not None and mem.since < before))
    ]
    times = sorted(
        t for mem in counted if (t := mem.reached.get(m.user_milestone)) is not None and (before is None or t < before)
    )
    if m.min_users is not None:
        need = m.min_users
    else:
        assert m.min_share is not None
        if not counted:
            return None
        need = max(1, math.ceil(m.min_share * len(counted) - 1e-9))
    return times[need - 1] if len(times) >= need else None


def brute(state: AccountState, criteria: Criteria, before: int | None = None) -> dict[str, int]:
    out = {m.id: brute_rule(state, m, before) for m in criteria.account_milestones}
    return {k: v for k, v in out.items() if v is not None}


def fresh_aggregates(state: AccountState) -> dict[tuple[str, str | None], Aggregate]:
    index = state.member_index
    assert index is not None
    scratch = MemberIndex(state.members, len(state.members))
    return {key: scratch.aggregate(*key) for key in index.aggregates}


rule_lists = st.lists(
    st.builds(
        lambda um, role, need: {"user_milestone": um, **({"role": role} if role else {}), **need},
        st.sampled_from(MILESTONES),
        st.sampled_from(ROLES),
        st.one_of(
            st.builds(lambda n: {"min_users": n}, st.integers(1, 4)),
            st.builds(lambda s: {"min_share": s}, st.sampled_from([0.01, 0.25, 1 / 3, 0.5, 0.6, 1.0])),
        ),
    ),
    min_size=1,
    max_size=4,
)
members = st.builds(
    Member,
    role=st.sampled_from(ROLES),
    # few distinct times: equal reach times of several members are common
    reached=st.dictionaries(st.sampled_from(MILESTONES), st.integers(0, 12)),
    since=st.one_of(st.none(), st.integers(0, 12)),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(rule_lists, min_size=1, max_size=3),
    st.lists(st.tuples(st.sampled_from(USERS), members, st.integers(0, 2), st.integers(0, 14)), max_size=40),
)
def test_index_agrees_with_a_walk_after_every_member_write(rule_sets, writes):
    """Joins, role changes and reach times moving either way, in any order;
    criteria switching back and forth (a rule's aggregate is built the first
    time it is asked for, then maintained)."""
    versions = [make_criteria(r, version=i + 1) for i, r in enumerate(rule_sets)]
    state = AccountState("a")
    index = None
    for uid, member, which, before in writes:
        put_member(state, uid, member)
        criteria = versions[which % len(versions)]
        assert evaluate_account(state, criteria) == brute(state, criteria)
        assert account_reached_as_of(state, criteria, before) == brute(state, criteria, before)
        # maintained in place: never rebuilt after its first build
        assert index is None or state.member_index is index
        index = state.member_index
    if index is not None:
        assert index.aggregates == fresh_aggregates(state)


call_lists = st.lists(
    st.one_of(
        st.tuples(st.just("group"), st.sampled_from(USERS), st.integers(0, 600)),
        st.tuples(st.just("identify"), st.sampled_from(USERS), st.integers(0, 600), st.sampled_from(ROLES[1:])),
        st.tuples(st.just("track"), st.sampled_from(USERS), st.integers(0, 600), st.sampled_from(["E1", "E2", "X"])),
    ),
    max_size=50,
)


@settings(max_examples=100, deadline=None)
@given(rule_lists, rule_lists, call_lists, st.integers(0, 50))
def test_pipeline_account_rules_agree_with_a_walk(first, second, calls, switch_at):
    """The real mutation paths (group, identify, track out of event-time order,
    a criteria change) keep the account's answers equal to a walk's, and to
    those of the same account reloaded from its bytes (the index rebuilt)."""
    p = OfflinePipeline(make_criteria(first), time=NO_LATENESS)
    for offset, call in enumerate(calls):
        if offset == switch_at:
            p.change_criteria(make_criteria(second, version=2), at_ms=10**12)
        kind, user, minute = call[0], call[1], call[2]
        if kind == "group":
            p.feed(group(user, "a", minute), offset=offset)
        elif kind == "identify":
            p.feed(identify(user, minute, role=call[3]), offset=offset)
        else:
            p.feed(track(f"m{offset}", user, "a", call[3], minute), offset=offset)
        state = p.accounts.get("a")
        if state is None:
            continue
        assert state.reached == brute(state, p.criteria)
        # the members' JSON kept by put_member since the last write: as if encoded afresh
        assert state.to_bytes() == replace(state).to_bytes()
        reloaded = AccountState.from_bytes("a", state.to_bytes())
        assert reloaded.member_index is None
        assert evaluate_account(reloaded, p.criteria) == state.reached
        if state.member_index is not None:
            assert state.member_index.aggregates == fresh_aggregates(state)


# ------------------------------------------- each mutation path, one by one


def pipeline(rule_list: list[dict[str, Any]]) -> OfflinePipeline:
    p = OfflinePipeline(make_criteria(rule_list), time=NO_LATENESS)
    p.feed(group("u0", "a", 0), offset=0)
    p.feed(track("e0", "u0", "a", "E1", 10), offset=1)
    assert p.accounts["a"].member_index is not None  # built by the evaluations so far
    return p


def assert_maintained(p: OfflinePipeline, index: MemberIndex | None) -> None:
    state = p.accounts["a"]
    assert state.member_index is index, "rebuilt instead of kept in step"
    assert index is not None and index.aggregates == fresh_aggregates(state)
    assert state.reached == brute(state, p.criteria)


def test_a_joining_member_is_counted_in_a_share():
    p = pipeline([{"user_milestone": "m1", "min_share": 0.5}])
    index = p.accounts["a"].member_index
    assert "r0" in p.accounts["a"].reached  # 1 of 1
    p.feed(group("u1", "a", 20), offset=2)
    p.feed(group("u2", "a", 21), offset=3)
    assert "r0" not in p.accounts["a"].reached  # 1 of 3
    assert_maintained(p, index)


def test_a_member_reaching_a_milestone_is_counted():
    p = pipeline([{"user_milestone": "m1", "min_users": 2}])
    index = p.accounts["a"].member_index
    assert p.accounts["a"].reached == {}
    p.feed(track("e1", "u1", "a", "E1", 30), offset=2)
    assert p.accounts["a"].reached == {"r0": minute(30)}
    assert_maintained(p, index)


def test_an_earlier_event_moves_the_reach_time():
    p = pipeline([{"user_milestone": "m2", "min_users": 1}])
    index = p.accounts["a"].member_index
    p.feed(track("e1", "u0", "a", "E2", 50), offset=2)
    p.feed(track("e2", "u0", "a", "E2", 40), offset=3)
    reached = p.accounts["a"].reached["r0"]
    p.feed(track("e3", "u0", "a", "E2", 5), offset=4)  # late: now the 2nd event is at minute 40
    assert p.accounts["a"].reached["r0"] < reached
    assert_maintained(p, index)


def test_a_role_change_moves_the_member_between_role_rules():
    p = pipeline([{"user_milestone": "m1", "role": "executive"}, {"user_milestone": "m1", "role": "admin"}])
    index = p.accounts["a"].member_index
    p.feed(identify("u0", 1, role="executive"), offset=2)
    assert set(p.accounts["a"].reached) == {"r0"}
    assert_maintained(p, index)
    p.feed(identify("u0", 2, role="admin"), offset=3)
    assert set(p.accounts["a"].reached) == {"r1"}
    assert_maintained(p, index)


def test_a_criteria_change_rebuilds_then_maintains():
    p = pipeline([{"user_milestone": "m1", "min_users": 1}])
    p.feed(identify("u0", 1, role="admin"), offset=2)
    p.change_criteria(make_criteria([{"user_milestone": "m1", "role": "admin", "min_users": 2}], version=2), 10**12)
    state = p.accounts["a"]
    assert state.reached == {} == brute(state, p.criteria)
    index = state.member_index
    assert index is not None and set(index.aggregates) == {("m1", "admin")}  # the old rule's aggregate is shed
    p.feed(group("u1", "a", 3), offset=3)
    p.feed(identify("u1", 4, role="admin"), offset=4)
    p.feed(track("e1", "u1", "a", "E1", 60), offset=5)
    assert "r0" in state.reached
    assert_maintained(p, index)


def test_writes_behind_the_index_make_it_rebuild():
    criteria = make_criteria([{"user_milestone": "m1", "min_share": 0.5}])
    state = AccountState("a")
    put_member(state, "u0", Member(reached={"m1": 5}))
    assert evaluate_account(state, criteria) == {"r0": 5}
    first = current_index(state)
    state.members["u1"] = Member()  # added directly: the count gives it away
    state.members["u2"] = Member()
    assert evaluate_account(state, criteria) == {} == brute(state, criteria)
    assert state.member_index is not first
    state.members = {"u0": Member(reached={"m1": 7})}  # replaced wholesale
    assert evaluate_account(state, criteria) == {"r0": 7}
    second = current_index(state)
    second.aggregate("m1", None).times[:] = [1]  # out of step: the next update notices
    put_member(state, "u0", Member(reached={"m1": 9}))
    assert evaluate_account(state, criteria) == {"r0": 9}
    assert state.member_index is not second


def test_the_index_is_not_serialized():
    state = AccountState("a")
    put_member(state, "u0", Member(reached={"m1": 5}))
    evaluate_account(state, make_criteria([{"user_milestone": "m1"}]))
    assert state.member_index is not None
    plain = AccountState("a", members={"u0": Member(reached={"m1": 5})})
    assert state.to_bytes() == plain.to_bytes()
    assert state == plain


def test_a_written_account_re_encodes_what_changed_since():
    """Members' JSON is kept from the last write; every way a member can
    change before the next write shows in the next one."""
    state = AccountState("a")
    put_member(state, "u0", Member(reached={"m1": 5}))
    state.to_bytes()
    put_member(state, "u0", Member(role="admin", reached={"m1": 5}))  # replaced
    put_member(state, "u1", Member())  # added
    assert state.to_bytes() == replace(state).to_bytes()
    assert AccountState.from_bytes("a", state.to_bytes()).members == state.members
    state.members["u2"] = Member(reached={"m2": 1})  # added behind put_member
    assert state.to_bytes() == replace(state).to_bytes()
    state.members = {"u0": Member(), "u1": Member(), "u2": Member(role="executive")}  # replaced wholesale
    assert AccountState.from_bytes("a", state.to_bytes()).members == state.members
