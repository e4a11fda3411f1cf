"""Drift alerts and absence-driven triggers, on the scripted six weeks and on
random condition sequences."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta

import orjson
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stream import scripted_month as sm
from stream.core.activity import DayMask
from stream.core.alerts import Condition, conditions, transition
from stream.core.criteria import parse_criteria
from stream.core.lifecycle import sweep_triggers
from stream.core.partitioning import partition_for
from stream.core.records import Member
from stream.core.replay import OfflinePipeline
from stream.core.state import AccountState
from stream.core.sweep import Produced, sweep_account, swept_through
from stream.core.timeutil import MS_PER_DAY, to_iso
from stream.core.views import account_view
from stream.workload import WorkloadSpec, generate_messages
from tests.integration.harness import ROOT

V1 = parse_criteria(sm.CRITERIA_V1)
V2 = parse_criteria(sm.criteria_v2())


def run_month(input_partitions: int = 1, chunk: int = 1) -> OfflinePipeline:
    """Feed the month; with several input partitions, take ``chunk`` calls from
    each in turn (a consumer interleaves partitions by fetch)."""
    p = OfflinePipeline(V1, partitions=4, input_partitions=input_partitions)

    def feed(calls: list[sm.Call], first_offset: int) -> int:
        by_lane: dict[int, list[bytes]] = defaultdict(list)
        for key, value in sm.messages(calls):
            by_lane[partition_for(key.decode(), input_partitions)].append(value)
        offsets = defaultdict(lambda: first_offset)
        longest = max(map(len, by_lane.values()))
        order = [
            (lane, v)
            for start in range(0, longest, chunk)
            for lane, vs in sorted(by_lane.items())
            for v in vs[start : start + chunk]
        ]
        for lane, value in order:
            p.feed(value, partition=lane, offset=offsets[lane])
            offsets[lane] += 1
        return first_offset + len(calls)

    offset = feed(sm.phase_one(), 0)
    p.change_criteria(V2, 0)
    feed(sm.phase_two(), offset)
    p.finish(idle_ms=60_000)
    return p


MONTH = run_month()


def test_each_account_raises_exactly_its_story():
    kinds: dict[str, set[str]] = defaultdict(set)
    for a in MONTH.alerts:
        kinds[a["account_id"]].add(a["kind"])
    assert {acct: kinds[acct] for acct in sm.STORIES} == {acct: k for acct, (k, _) in sm.STORIES.items()}
    assert not MONTH.rejections


def story(account: str) -> list[tuple[str, str, str, str | None]]:
    return [
        (a["event_time"][:10], a["status"], a["severity"], a["user_id"])
        for a in MONTH.alerts
        if a["account_id"] == account
    ]


def day(n: int) -> str:
    return (to_iso(int((sm.START + timedelta(days=n)).timestamp() * 1000)) or "")[:10]


def test_alerts_open_update_and_resolve_on_the_expected_days():
    assert story("stalled") == [(day(10), "open", "warning", None), (day(16), "resolved", "warning", None)]
    assert story("flagship") == [(day(20), "open", "warning", None), (day(40), "updated", "critical", None)]
    assert story("lumen") == [(day(7), "open", "warning", None)]
    assert story("champion") == [(day(1), "open", "warning", None)]
    # the criteria change (day 21) drops the rate 1.0 -> 0.8; a second sharer on day 30 brings it back
    assert story("regression") == [(day(21), "open", "warning", None), (day(31), "resolved", "warning", None)]
    (opened, resolved) = story("drop")
    assert opened[1:] == ("open", "warning", None) and resolved[1:] == ("resolved", "warning", None)
    assert day(29) <= opened[0] < resolved[0] <= day(42)
    # last key event on day 20: open after 7 silent days, critical after 14, for the account and each activated user
    dormant = story("dormant")
    assert [x for x in dormant if x[3] is None] == [
        (day(28), "open", "warning", None),
        (day(35), "updated", "critical", None),
    ]
    assert {x[3] for x in dormant} == {None, "dormant-u0", "dormant-u1", "dormant-u2"}
    assert len({a["id"] for a in MONTH.alerts}) == len(MONTH.alerts)
    # sweeps keep up with the stream: everything up to the change day's midnight ran under v1
    change = day(sm.CHANGE_DAY) + "T00:00:00.000Z"
    assert {(a["event_time"] <= change, a["criteria_version"]) for a in MONTH.alerts} == {(True, 1), (False, 2)}


def test_absence_triggers_fire_once_per_condition():
    got = defaultdict(list)
    for t in MONTH.triggers:
        if t["kind"] in ("no_first_key_action", "stuck", "inactive"):
            got[(t["account_id"], t["kind"])].append((t["user_id"], t["event_time"][:10]))
    # two users joined the champion's account, logged in once and never came back
    assert sorted(got[("champion", "no_first_key_action")]) == [("champion-u1", day(2)), ("champion-u2", day(2))]
    assert sorted(got[("champion", "inactive")]) == [("champion-u1", day(8)), ("champion-u2", day(8))]
    assert sorted(got[("dormant", "inactive")]) == [(f"dormant-u{i}", day(28)) for i in range(3)]
    # stalled users connected on day 0 and never reported: stuck after 5 days, again under v2
    stuck = [t for t in MONTH.triggers if t["account_id"] == "stalled" and t["kind"] == "stuck"]
    assert {(t["milestone"], t["criteria_version"]) for t in stuck} == {("reported", 1), ("reported", 2)}
    assert all(t["next_milestone"] == "reported" for t in stuck)
    assert len({t["id"] for t in MONTH.triggers}) == len(MONTH.triggers)


TIMER_KINDS = ("no_first_key_action", "stuck", "inactive")


def test_interleaving_of_input_partitions_does_not_change_timer_outputs():
    """Sweeps see exactly the accepted calls dated before their midnight, so
    alerts and absence triggers do not depend on how lanes interleave (event
    -driven change records do: they describe each step as it was applied)."""
    a = run_month(input_partitions=3, chunk=1)
    b = run_month(input_partitions=3, chunk=97)
    key = lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS)  # noqa: E731
    assert a.alerts and sorted(map(key, a.alerts)) == sorted(map(key, b.alerts))
    timers = [sorted(key(t) for t in p.triggers if t["kind"] in TIMER_KINDS) for p in (a, b)]
    assert timers[0] and timers[0] == timers[1]


def test_a_sweep_is_applied_once_per_account_and_midnight():
    state = AccountState.from_bytes("x", MONTH.accounts["dormant"].to_bytes())
    again = sweep_account(state, V2, state.swept)
    assert (again.alerts, again.triggers) == ([], [])


def test_a_sweep_that_changes_nothing_leaves_the_account_as_it_was():
    """A worker writes only the accounts whose mark moved: a sweep may move it
    only when it changed the account, and one that did not must leave it
    byte for byte as it was (so running it again changes nothing either)."""
    last = max(state.swept for state in MONTH.accounts.values())
    unchanged = changed = 0
    for account_id in sorted(MONTH.accounts):
        state = AccountState.from_bytes(account_id, MONTH.accounts[account_id].to_bytes())
        for n in range(1, 41):
            midnight = last + n * MS_PER_DAY
            before = state.to_bytes()
            produced = sweep_account(state, V2, midnight)
            if state.swept == midnight:
                changed += 1
                assert state.to_bytes() != before
                assert sweep_account(state, V2, midnight) == Produced()  # replayed: a no-op
            else:
                unchanged += 1
                assert produced == Produced() and state.to_bytes() == before
                assert sweep_account(state, V2, midnight) == Produced() and state.to_bytes() == before
    assert changed and unchanged > changed


def test_a_sweep_fires_in_user_order_whatever_order_the_users_joined():
    """Timer triggers come out by user, then in rule order (no first key
    action, stuck, inactive), not in the order members were added."""
    at = 20 * MS_PER_DAY  # day 19 is the last whole day before it
    state = AccountState(account_id="a", criteria_version=V1.version, first_seen=0)
    for uid in ("u3", "u1", "u2"):
        # joined on day 0, reached "connected" then, last active on day 1
        state.members[uid] = Member(reached={"connected": 0}, since=0, active=DayMask(1, 1))
    fired = [(t["user_id"], t["kind"]) for t in sweep_triggers(state, V1, at)]
    assert fired == [(u, k) for u in ("u1", "u2", "u3") for k in ("no_first_key_action", "stuck", "inactive")]
    assert len(state.triggered) == len(fired)  # each fire remembered under its own key
    assert sweep_triggers(state, V1, at) == []  # each condition fires once


def test_alert_conditions_count_only_members_known_before_the_midnight():
    """One walk over the members gathers what the member rules need: a member
    who joined after the midnight counts for none of them."""
    at = 20 * MS_PER_DAY
    day = at // MS_PER_DAY - 1
    state = AccountState(account_id="a", criteria_version=V1.version, first_seen=0)
    state.members["champion"] = Member(role="analyst", since=0, key=DayMask(day, 1))
    state.members["late"] = Member(role="analyst", since=at, key=DayMask(day, 1))
    for i in range(V1.alerts.champion_min_users - 1):
        state.members[f"quiet-{i}"] = Member(role="analyst", since=0)
    found = conditions(state, V1, at)
    assert found["single_champion"].evidence["champion"] == "champion"
    assert found["single_champion"].evidence["known_users"] == V1.alerts.champion_min_users
    state.members["late"] = Member(role="analyst", since=0, key=DayMask(day, 1))
    assert "single_champion" not in conditions(state, V1, at)  # two active users now


def test_swept_through_is_the_partitions_once_the_account_had_a_call_before_it():
    state = AccountState.from_bytes("x", MONTH.accounts["dormant"].to_bytes())
    assert state.first_seen is not None
    later = state.swept + 5 * MS_PER_DAY
    assert swept_through(state, 0) == state.swept  # the last sweep that changed it
    assert swept_through(state, later) == later
    newcomer = AccountState.from_bytes("y", state.to_bytes())
    newcomer.first_seen, newcomer.swept = later, 0
    assert swept_through(newcomer, later) == 0  # first seen at the midnight: not swept by it
    assert account_view(state, V2, later, later)["swept_through"] == to_iso(later)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([None, "warning", "critical"]), min_size=1, max_size=40), st.integers(0, 3))
def test_open_and_resolve_alternate(conditions, cooldown):
    doc = dict(sm.CRITERIA_V1, alerts={"cooldown_days": cooldown})
    criteria = parse_criteria(doc)
    state = AccountState("a")
    statuses = []
    for i, severity in enumerate(conditions):
        cond = None if severity is None else Condition(severity, {"i": i})
        record = transition(state, "dormant", cond, (i + 1) * MS_PER_DAY, criteria)
        if record is not None:
            statuses.append((i, record["status"], record["severity"]))
        # the state always says whether the alert is open
        assert ("dormant" in state.alerts) == (
            severity is not None and bool(statuses) and statuses[-1][1] != "resolved"
        )
    is_open = False
    last_resolved = None
    for i, status, _severity in statuses:
        if status == "open":
            assert not is_open
            assert last_resolved is None or i - last_resolved >= cooldown
            is_open = True
        elif status == "updated":
            assert is_open
        else:
            assert is_open
            is_open, last_resolved = False, i
    # severity changes while open are always re-emitted
    assert all(a[2] != b[2] for a, b in itertools.pairwise(statuses) if b[1] == "updated")


def test_every_record_matches_its_published_schema():
    import json

    import fastjsonschema

    from stream.core.segment import schemas_dir

    alert_schema = fastjsonschema.compile(json.loads((schemas_dir() / "drift-alert.schema.json").read_text()))
    trigger_schema = fastjsonschema.compile(json.loads((schemas_dir() / "lifecycle-trigger.schema.json").read_text()))
    for a in MONTH.alerts:
        alert_schema(a)
    for t in MONTH.triggers:
        trigger_schema(t)


def _sweep_outputs(messages: list[tuple[bytes, bytes]], chunk: int | None) -> tuple[list[str], list[str], list[str]]:
    """Alerts and absence triggers of the synthetic workload on 4 input
    partitions, read ``chunk`` calls from each in turn (None: one whole
    partition after the other, as `stream verify` reads a topic)."""
    criteria = parse_criteria(yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text()))
    p = OfflinePipeline(criteria, partitions=4, input_partitions=4)
    lanes: dict[int, list[bytes]] = defaultdict(list)
    for key, value in messages:
        lanes[partition_for(key.decode(), 4)].append(value)
    step = chunk or max(map(len, lanes.values()))
    longest = max(map(len, lanes.values()))
    order = [(q, n, vs[n]) for q, vs in sorted(lanes.items()) for n in range(len(vs))]
    order.sort(key=lambda x: (0, x[0], x[1]) if chunk is None else (x[1] // step, x[0], x[1]))
    assert longest
    for q, n, value in order:
        p.feed(value, partition=q, offset=n)
    p.finish()
    alerts = sorted(a["id"] for a in p.alerts if a["kind"] != "activation_regression")
    swept = sorted(t["id"] for t in p.triggers if t["kind"] in ("no_first_key_action", "stuck", "inactive"))
    late = sorted(orjson.loads(r.raw)["m"] for r in p.rejections if r.reason == "late")
    return alerts, swept, late


def test_sweeps_do_not_depend_on_how_input_partitions_interleave():
    """A sweep judges the account as of its midnight: members who joined after
    it, and milestones reached after it, must not count however far past the
    midnight the partition had got (found by the late and out-of-order chaos
    scenario: a share milestone diluted by a later user opened an alert live
    that the offline run never raised). And which calls are late does not
    depend on it either: a parked call released by its group call keeps its
    own input partition's progress."""
    messages = list(generate_messages(WorkloadSpec(accounts=40, days=8, seed=3)))
    sequential = _sweep_outputs(messages, None)
    assert sequential[0] and sequential[1]  # the workload raises alerts and triggers
    for chunk in (1, 7, 200):
        assert _sweep_outputs(messages, chunk) == sequential, f"chunk {chunk}"


def test_an_account_is_swept_from_the_first_midnight_after_its_first_call():
    """Its createdAt may be weeks back, but whether a sweep just before its
    first call would see it depends on how far the partition had got."""
    from stream.core.clock import TimeRules
    from tests.core.helpers import group, track

    criteria = parse_criteria(yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text()))
    p = OfflinePipeline(criteria, time=TimeRules(allowed_lateness_ms=10**13))
    day = 24 * 60
    p.feed_all(
        [
            group("u", "acme", 2 * day + 600, createdAt="2026-09-01T00:00:00Z"),
            track("m", "u", "acme", "Logged In", 2 * day + 601),
        ]
    )
    state = p.accounts["acme"]
    midnight_before = 1790812800000 + 2 * MS_PER_DAY  # 2026-10-03, the day of its first calls
    assert to_iso(midnight_before) == "2026-10-03T00:00:00.000Z"
    assert sweep_account(state, criteria, midnight_before).alerts == [] and state.swept == 0
    produced = sweep_account(state, criteria, midnight_before + MS_PER_DAY)
    assert state.swept == midnight_before + MS_PER_DAY
    assert any(a["kind"] == "stalled_activation" for a in produced.alerts)  # 33 days since createdAt
