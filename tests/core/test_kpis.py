from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.activation import apply_envelope, new_account, new_user
from stream.core.activity import DayMask
from stream.core.criteria import Criteria, parse_criteria
from stream.core.engagement import day_of
from stream.core.envelope import Envelope
from stream.core.kpis import TTA_BUCKETS, account_kpis, finalize, kpi_partial, merge_partials, prometheus_samples
from stream.core.records import Member, Tally
from stream.core.state import AccountState, UserState
from stream.core.timeutil import MS_PER_DAY, parse_timestamp_ms
from tests.core.helpers import T0

DAY0 = day_of(int(T0.timestamp() * 1000))  # 2026-10-01
EVENTS = ["A", "B", "C", "Sub", "Cancel", "X"]
PAIR_KPIS = [
    "activation_users",
    "activation_accounts",
    "visitor_signup",
    "signup_subscription",
    "stickiness",
    "churn",
    "retention",
    "deep_usage",
    "shallow_accounts",
]


def crit(period_days: int = 7, **kpis: Any) -> Criteria:
    return parse_criteria(
        {
            "version": 1,
            "user_milestones": [
                {"id": "a", "event": "A"},
                {"id": "b", "event": "B"},
                {"id": "c", "event": "C", "min_count": 2},
            ],
            "account_milestones": [{"id": "acc_a", "event": "A"}],
            "kpis": {
                "subscription_event": "Sub",
                "cancel_event": "Cancel",
                "period_days": period_days,
                "deep_usage_share": 0.5,
                "shallow_depth_below": 0.5,
                "roles": ["admin", "member"],
                **kpis,
            },
        }
    )


def at(day: int, minute: int = 0) -> int:
    """Epoch ms of ``minute`` past midnight of DAY0 + ``day``."""
    return (DAY0 + day) * MS_PER_DAY + minute * 60_000


def member(active: Iterable[int] = (), **kw: Any) -> Member:
    mask = DayMask()
    for d in active:
        mask.add(DAY0 + d)
    return Member(active=mask, **kw)


def account(
    aid: str, members: dict[str, Member] | None = None, events: Iterable[tuple[int, str]] = (), **kw: Any
) -> AccountState:
    """An account with ``events`` as (day, name) facts in its tallies and day counts."""
    s = AccountState(account_id=aid, members=members or {}, **kw)
    for day, name in events:
        s.events.setdefault(name, Tally()).add(at(day))
        s.days.setdefault(DAY0 + day, {}).setdefault(name, 0)
        s.days[DAY0 + day][name] += 1
        s.seen(at(day))
    return s


def kpis_of(accounts: list[AccountState], c: Criteria, as_of: int, **kw: Any) -> dict[str, Any]:
    return finalize(kpi_partial(accounts, c, as_of, **kw))["kpis"]


# ------------------------------------------------------------------ unit


def test_stickiness_is_mean_dau_over_mau():
    c = crit(7)
    s = account("x", {"u1": member(range(4, 11)), "u2": member([10]), "u3": member([3]), "u4": member()})
    k = kpis_of([s], c, at(10, 600))["stickiness"]
    # period days 4..10: DAU sum 7 + 1 = 8, MAU 2 (u3 was active the day before)
    assert (k["numerator"], k["denominator"]) == (8 / 7, 2)
    assert k["value"] == pytest.approx(4 / 7)


def test_feature_adoption_and_deep_usage_count_milestones_reached_by_as_of():
    c = crit(7)
    as_of = at(10)
    s = account(
        "x",
        {
            "u1": member([9], reached={"a": as_of, "b": as_of + 1}),  # a at as_of counts, b after it not
            "u2": member([10], reached={"a": at(1), "b": at(2), "c": at(3)}),
            "u3": member([1], reached={"a": at(1), "b": at(1), "c": at(1)}),  # not active in the period
        },
    )
    k = kpis_of([s], c, as_of)
    by = k["feature_adoption"]["by_milestone"]
    assert {m: (r["numerator"], r["denominator"]) for m, r in by.items()} == {"a": (2, 2), "b": (1, 2), "c": (1, 2)}
    assert (k["deep_usage"]["numerator"], k["deep_usage"]["denominator"]) == (1, 2)  # needs 2 of 3


@pytest.mark.parametrize(("share", "needed"), [(1 / 3, 1), (0.5, 2), (2 / 3, 2), (0.7, 3), (1.0, 3)])
def test_deep_usage_threshold_is_inclusive(share, needed):
    c = crit(7, deep_usage_share=share)
    reached = [{}, {"a": at(1)}, {"a": at(1), "b": at(1)}, {"a": at(1), "b": at(1), "c": at(1)}]
    s = account("x", {f"u{i}": member([10], reached=r) for i, r in enumerate(reached)})
    assert kpis_of([s], c, at(10))["deep_usage"]["numerator"] == 4 - needed


def test_organisational_depth_counts_active_members_by_role():
    c = crit(7)
    roles = {"u1": "admin", "u2": "member", "u3": "member", "u4": None, "u5": "ceo", "u6": "admin"}
    members = {u: member([10] if u != "u6" else [], role=r) for u, r in roles.items()}
    by_role = kpis_of([account("x", members)], c, at(10))["organisational_depth"]["by_role"]
    assert {r: v["numerator"] for r, v in by_role.items()} == {"admin": 1, "member": 2, "other": 2}
    assert by_role["member"]["value"] == pytest.approx(2 / 5)


def test_churn_and_retention():
    c = crit(7)  # period days 4..10, previous period days -3..3
    accounts = [
        account("churned", events=[(-1, "X"), (5, "Cancel")]),
        account("cancelled_before", events=[(0, "X"), (2, "Cancel")]),
        account("kept", events=[(-2, "X"), (1, "A")]),
        account("new", events=[(6, "X"), (7, "Cancel")]),
        account("cancelled_at_start", events=[(-1, "X"), (4, "Cancel")]),  # at the start is not before it
    ]
    k = kpis_of(accounts, c, at(10, 1439))
    assert (k["churn"]["numerator"], k["churn"]["denominator"]) == (2, 3)
    # active in the previous period: churned, cancelled_before, kept, cancelled_at_start; again now: 2
    assert (k["retention"]["numerator"], k["retention"]["denominator"]) == (2, 4)


def test_functional_depth_and_shallow_accounts():
    c = crit(7)  # key features A, B, C; shallow below 0.5
    accounts = [
        account("one", events=[(5, "A"), (5, "X")]),
        account("two", events=[(5, "A"), (6, "B"), (1, "C")]),
        account("idle", events=[(1, "A")]),
    ]
    k = kpis_of(accounts, c, at(10))
    assert (k["shallow_accounts"]["numerator"], k["shallow_accounts"]["denominator"]) == (1, 2)
    assert k["functional_depth"]["value"] == pytest.approx(0.5)  # (1/3 + 2/3) / 2
    one = account_kpis(accounts[0], c, at(10))["functional_depth"]
    assert (one["numerator"], one["denominator"], one["shallow"]) == (1, 3, True)
    assert (one["features_used"], one["features_unused"]) == (["A"], ["B", "C"])
    two = account_kpis(accounts[1], c, at(10))["functional_depth"]
    assert (two["value"], two["shallow"]) == (pytest.approx(2 / 3), False)
    at_threshold = kpis_of(accounts, crit(7, shallow_depth_below=1 / 3), at(10))["shallow_accounts"]
    assert at_threshold["numerator"] == 0  # a depth equal to the threshold is not shallow


def test_time_to_activate_statistics_and_buckets():
    c = crit(7)
    base = at(0)
    users = {
        f"u{i}": member(since=base, activated=True, activated_at=base + secs * 1000)
        for i, secs in enumerate([40, 10, 30, 20])
    }
    users["early"] = member(since=base, activated=True, activated_at=base - 5000)  # clamped to 0
    users["no_since"] = member(activated=True, activated_at=base)
    s = account("x", users, first_seen=base, activated_at=base + 7_200_000)
    view = finalize(kpi_partial([s], c, at(10)))
    tu = view["kpis"]["time_to_activate_users"]
    assert (tu["numerator"], tu["denominator"]) == (100, 5)
    assert (tu["mean"], tu["median"], tu["p90"]) == (20, 20, 40)
    ta = view["kpis"]["time_to_activate_accounts"]
    assert (ta["mean"], ta["median"], ta["p90"]) == (7200, 7200, 7200)
    buckets = prometheus_samples(kpi_partial([s], c, at(10)))["time_to_activate_seconds_bucket"]
    assert list(buckets) == list(TTA_BUCKETS)
    assert all(n == 5 for n in buckets.values())
    odd = account("y", {f"u{i}": member(since=0, activated_at=v * 1000) for i, v in enumerate([5, 1, 3])})
    t = kpis_of([odd], c, at(10))["time_to_activate_users"]
    assert (t["median"], t["p90"]) == (3, 5)  # p90: the ceil(0.9 * 3) = 3rd smallest
    even = account("z", {f"u{i}": member(since=0, activated_at=v * 1000) for i, v in enumerate([40, 10, 30, 20])})
    t = kpis_of([even], c, at(10))["time_to_activate_users"]
    assert (t["median"], t["p90"]) == (25, 40)  # median: mean of the middle two
    ten = account("t", {f"u{i}": member(since=0, activated_at=i * 1000) for i in range(1, 11)})
    assert kpis_of([ten], c, at(10))["time_to_activate_users"]["p90"] == 9  # nearest rank, not interpolated


def test_cohorts_subscription_and_visitors():
    c = crit(7, cohort_months=2)
    sept, octo, may = parse_timestamp_ms("2026-09-15T00:00:00Z"), at(3), parse_timestamp_ms("2026-05-01T00:00:00Z")
    paying = account(
        "paying",
        {"u1": member(since=sept, activated=True), "u2": member(since=octo), "u3": member(since=may, activated=True)},
        events=[(2, "Sub")],
        traits={"created_at": [sept, 0]},
        activated_at=octo,
    )
    free = account("free", {"u1": member(since=octo, activated=True), "u4": member()}, events=[(3, "X")])
    view = finalize(kpi_partial([paying, free], c, at(10), visitors=10, converted_visitors=3))
    k = view["kpis"]
    users = {m: (r["numerator"], r["denominator"]) for m, r in k["cohorts"]["users"].items()}
    assert users == {"2026-09": (1, 1), "2026-10": (1, 2), "unknown": (0, 1)}  # May is outside the window
    accounts = {m: (r["numerator"], r["denominator"]) for m, r in k["cohorts"]["accounts"].items()}
    assert accounts == {"2026-09": (1, 1), "2026-10": (0, 1)}
    assert (k["activation_users"]["numerator"], k["activation_users"]["denominator"]) == (3, 5)
    assert k["signup_subscription"]["value"] == 0.5
    assert k["visitor_signup"]["value"] == pytest.approx(0.3)
    per = account_kpis(paying, c, at(10))
    assert set(per["activation_by_cohort"]["users"]) == {"2026-05", "2026-09", "2026-10"}  # all of its users
    assert per["subscribed"] is True and per["users"] == 3
    samples = prometheus_samples(kpi_partial([paying, free], c, at(10)))["cohort_users"]
    assert samples == {"2026-09": {"activated": 1, "total": 1}, "2026-10": {"activated": 1, "total": 2}}


def test_empty_input_gives_none_ratios():
    c = crit(7)
    for partial in (kpi_partial([], c, at(10)), merge_partials([]), kpi_partial([account("x")], c, at(10))):
        view = finalize(partial)
        for name in [*PAIR_KPIS, "functional_depth", "time_to_activate_users", "time_to_activate_accounts"]:
            if name not in ("activation_accounts", "signup_subscription") or not partial["accounts"]:
                assert view["kpis"][name]["value"] is None, name
        for r in view["kpis"]["feature_adoption"]["by_milestone"].values():
            assert r["value"] is None
        assert view["kpis"]["time_to_activate_users"]["p90"] is None
        samples = prometheus_samples(partial)
        assert samples["time_to_activate_seconds_bucket"]["+Inf"] == 0
        json.dumps(view)


def test_partial_survives_json():
    c = crit(7)
    s = account("x", {"u": member([9], since=at(0), activated_at=at(1), reached={"a": at(1)})}, events=[(9, "A")])
    p = kpi_partial([s], c, at(10))
    assert json.loads(json.dumps(p)) == p
    assert finalize(json.loads(json.dumps(p))) == finalize(p)
    assert json.loads(json.dumps(account_kpis(s, c, at(10))))["account_id"] == "x"


def test_merge_reports_the_range_of_as_of_and_versions():
    p1 = kpi_partial([], crit(7), at(10))
    p2 = kpi_partial([], crit(14), at(12))
    view = finalize(merge_partials([p1, p2]))
    assert view["as_of"] == finalize(merge_partials([p2, p1]))["as_of"]
    assert view["as_of"]["min"].startswith("2026-10-11") and view["as_of"]["max"].startswith("2026-10-13")
    assert view["parts"] == 2 and view["criteria_versions"] == [1]


# ------------------------------------------------------------- properties

Fact = tuple[str, str, int, int, str]  # account, user, day, minute, event
facts_st = st.lists(
    st.tuples(
        st.sampled_from(["a0", "a1", "a2", "a3"]),
        st.sampled_from(["u0", "u1", "u2", "u3"]),
        st.integers(0, 30),
        st.one_of(st.just(0), st.integers(0, 1439)),  # midnight: period and as_of boundaries
        st.sampled_from(EVENTS),
    ),
    max_size=60,
)


def build(facts: list[Fact], c: Criteria) -> dict[str, AccountState]:
    accounts: dict[str, AccountState] = {}
    users: dict[tuple[str, str], UserState] = {}
    for offset, (a, u, day, minute, event) in enumerate(facts):
        state = accounts.setdefault(a, new_account(a, c))
        user = users.setdefault((a, u), new_user(a, u))
        env = Envelope("track", a, u, at(day, minute), "t", offset, event=event)
        assert apply_envelope(state, user, env, c).status == "applied"
    return accounts


def brute(facts: list[Fact], c: Criteria, as_of: int) -> dict[str, Any]:
    """The KPIs recomputed from the facts alone."""
    p = c.kpis.period_days
    last = day_of(as_of) - DAY0
    first, start = last - p + 1, at(last - p + 1)
    accounts = sorted({f[0] for f in facts})
    members = sorted({(f[0], f[1]) for f in facts})

    def times(a: str, u: str | None, event: str | None = None) -> list[int]:
        return sorted(at(d, mi) for fa, fu, d, mi, e in facts if fa == a and u in (None, fu) and event in (None, e))

    def days(a: str, u: str | None, lo: int, hi: int, event: str | None = None) -> set[int]:
        return {d for fa, fu, d, _, e in facts if fa == a and u in (None, fu) and lo <= d <= hi and event in (None, e)}

    def reached(a: str, u: str) -> dict[str, int]:
        out = {}
        for mid, event, k in (("a", "A", 1), ("b", "B", 1), ("c", "C", 2)):
            ts = times(a, u, event)
            if len(ts) >= k:
                out[mid] = ts[k - 1]
        return out

    mau = [(a, u) for a, u in members if days(a, u, first, last)]
    dau_sum = sum(len(days(a, u, first, last)) for a, u in mau)
    adopters = {m: sum(1 for a, u in mau if reached(a, u).get(m, as_of + 1) <= as_of) for m in ("a", "b", "c")}
    deep = sum(1 for a, u in mau if sum(t <= as_of for t in reached(a, u).values()) >= 2)
    tta_users = sorted(max(reached(a, u).values()) - times(a, u)[0] for a, u in members if len(reached(a, u)) == 3)
    tta_accounts = sorted(times(a, None, "A")[0] - times(a, None)[0] for a in accounts if times(a, None, "A"))
    base = [a for a in accounts if times(a, None)[0] < start and not any(t < start for t in times(a, None, "Cancel"))]
    churned = [a for a in base if days(a, None, first, last, "Cancel")]
    prev = [a for a in accounts if days(a, None, first - p, first - 1)]
    active = [a for a in accounts if days(a, None, first, last)]
    used = {
        a: {e for fa, _, d, _, e in facts if fa == a and first <= d <= last and e in ("A", "B", "C")} for a in active
    }
    return {
        "mau": len(mau),
        "dau_sum": dau_sum,
        "adopters": adopters,
        "deep": deep,
        "users": len(members),
        "activated_users": sum(1 for a, u in members if len(reached(a, u)) == 3),
        "tta_users": tta_users,
        "tta_accounts": tta_accounts,
        "subscribed": sum(1 for a in accounts if times(a, None, "Sub")),
        "churn": (len(churned), len(base)),
        "retention": (sum(1 for a in prev if a in active), len(prev)),
        "shallow": (sum(1 for a in active if len(used[a]) / 3 < 0.5), len(active)),
        "depth_used": sum(len(v) for v in used.values()),
    }


settings_st = dict(max_examples=60, deadline=None)
as_of_st = st.tuples(st.integers(20, 40), st.one_of(st.just(0), st.integers(0, MS_PER_DAY - 1)))


@settings(**settings_st)
@given(facts_st, st.integers(1, 14), as_of_st)
def test_kpis_equal_a_brute_force_recomputation(facts, period, as_of_parts):
    c = crit(period)
    as_of = at(as_of_parts[0]) + as_of_parts[1]
    accounts = build(facts, c)
    p = kpi_partial(accounts.values(), c, as_of)
    b = brute(facts, c, as_of)
    assert (p["mau"], p["dau_sum"], p["deep_users"]) == (b["mau"], b["dau_sum"], b["deep"])
    assert p["adopters"] == b["adopters"]
    assert (p["users"], p["activated_users"], p["subscribed_accounts"]) == (
        b["users"],
        b["activated_users"],
        b["subscribed"],
    )
    assert p["tta_users_ms"] == b["tta_users"]
    assert p["tta_accounts_ms"] == b["tta_accounts"]
    assert (p["churned"], p["churn_base"]) == b["churn"]
    assert (p["retained"], p["retention_base"]) == b["retention"]
    assert (p["shallow_accounts"], p["active_accounts"]) == b["shallow"]
    assert p["depth_used"] == b["depth_used"]
    k = finalize(p)["kpis"]
    if b["mau"]:
        assert k["stickiness"]["value"] == pytest.approx(b["dau_sum"] / period / b["mau"])
        assert 0 <= k["stickiness"]["value"] <= 1
    else:
        assert k["stickiness"]["value"] is None


@settings(**settings_st)
@given(facts_st, st.integers(1, 14), as_of_st, st.lists(st.integers(0, 3), min_size=4, max_size=4), st.randoms())
def test_merging_the_partials_of_any_split_equals_the_whole(facts, period, as_of_parts, groups, rnd):
    c = crit(period)
    as_of = at(as_of_parts[0]) + as_of_parts[1]
    accounts = list(build(facts, c).values())
    whole = kpi_partial(accounts, c, as_of, visitors=7, converted_visitors=2)
    parts = [kpi_partial([s for s in accounts if groups[int(s.account_id[1])] == g], c, as_of) for g in range(4)]
    parts[0]["visitors"], parts[0]["converted_visitors"] = 7, 2
    merged = merge_partials(parts)
    whole["parts"] = merged["parts"]  # the only difference: how many partials were merged
    assert merged == whole
    shuffled = list(parts)
    rnd.shuffle(shuffled)
    cut = rnd.randint(0, 4)
    nested = merge_partials([merge_partials(shuffled[:cut]), merge_partials([]), merge_partials(shuffled[cut:])])
    assert nested == merged
    assert finalize(nested) == finalize(whole)
    assert prometheus_samples(nested) == prometheus_samples(whole)


@settings(**settings_st)
@given(facts_st, st.integers(1, 14), as_of_st, st.integers(0, 50), st.integers(0, 50))
def test_prometheus_ratios_equal_the_finalized_values(facts, period, as_of_parts, visitors, converted):
    c = crit(period)
    as_of = at(as_of_parts[0]) + as_of_parts[1]
    partial = kpi_partial(build(facts, c).values(), c, as_of, visitors=visitors, converted_visitors=converted)
    view, samples = finalize(partial)["kpis"], prometheus_samples(partial)
    num, den = samples["numerator"], samples["denominator"]
    for name in [*PAIR_KPIS, "time_to_activate_users", "time_to_activate_accounts"]:
        expected = view[name]["value"]
        assert (num[name] / den[name] if den[name] else None) == expected, name
    assert "feature_adoption" not in num and den["feature_adoption"] == view["feature_adoption"]["denominator"]
    for mid, n in samples["milestone_adopters"].items():
        r = view["feature_adoption"]["by_milestone"][mid]
        assert (n / den["feature_adoption"] if den["feature_adoption"] else None) == r["value"]
    assert sum(samples["active_users_by_role"].values()) == den["stickiness"]
    buckets = list(samples["time_to_activate_seconds_bucket"].values())
    assert buckets == sorted(buckets) and buckets[-1] == den["time_to_activate_users"]
    s = view["stickiness"]["value"]
    assert s is None or 0 <= s <= 1
    assert not any(isinstance(v, float) and math.isnan(v) for v in num.values())
