from __future__ import annotations

import copy

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.criteria import parse_criteria
from stream.core.engagement import (
    KEPT_DAYS,
    DayCounts,
    EngagementRules,
    add_event,
    day_of,
    engagement_view,
    merge_days,
    window_score,
    window_total,
)
from stream.core.errors import CriteriaError
from stream.core.replay import OfflinePipeline
from stream.core.timeutil import MS_PER_DAY
from tests.conftest import ROOT
from tests.core.helpers import T0, group, track

DOC = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())
RULES = EngagementRules(weights=(("A", 1.0), ("B", 10.0)), default_weight=0.5, half_life_days=7, trend_tolerance=0.1)
START = int(T0.timestamp() * 1000)
events = st.lists(st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 90 * MS_PER_DAY)), max_size=80)


def fold(evts: list[tuple[str, int]]) -> DayCounts:
    days: DayCounts = {}
    for name, offset in evts:
        add_event(days, START + offset, name)
    return days


def brute_window(evts: list[tuple[str, int]], first_day: int, last_day: int) -> float:
    return sum(RULES.weight(n) for n, off in evts if first_day <= day_of(START + off) <= last_day)


@settings(max_examples=80, deadline=None)
@given(events, st.integers(0, 100 * MS_PER_DAY))
def test_windows_equal_a_brute_force_recomputation(evts, now_offset):
    days = fold(evts)
    newest = max((day_of(START + off) for _, off in evts), default=0)
    now = START + now_offset
    today = day_of(now)
    view = engagement_view(days, RULES, now)
    for length in (7, 28):
        # the windows are exact while they lie within the kept range
        if today - 2 * length + 1 > newest - KEPT_DAYS and today <= newest:
            w = view[f"window_{length}d"]
            assert w["total"] == pytest.approx(brute_window(evts, today - length + 1, today))
            assert w["previous"] == pytest.approx(brute_window(evts, today - 2 * length + 1, today - length))


@settings(max_examples=80, deadline=None)
@given(events, st.integers(0, 200 * MS_PER_DAY), st.randoms(use_true_random=False))
def test_decayed_score_is_never_negative_and_order_free(evts, now_offset, rnd):
    shuffled = list(evts)
    rnd.shuffle(shuffled)
    a, b = fold(evts), fold(shuffled)
    assert a == b
    assert engagement_view(a, RULES, START + now_offset)["score"] >= 0


def test_decay_halves_per_half_life():
    days = fold([("B", 0)])  # weight 10 at noon of day 0
    noon = START + MS_PER_DAY // 2
    assert engagement_view(days, RULES, noon)["score"] == pytest.approx(10)
    assert engagement_view(days, RULES, noon + 7 * MS_PER_DAY)["score"] == pytest.approx(5)


def test_trend_directions():
    drop = fold([("B", d * MS_PER_DAY) for d in range(7)] + [("A", 8 * MS_PER_DAY)])
    w = engagement_view(drop, RULES, START + 13 * MS_PER_DAY)["window_7d"]
    assert (w["total"], w["previous"], w["direction"]) == (1.0, 70.0, "falling")
    assert w["change"] == pytest.approx(-69 / 70, abs=1e-4)
    assert w["by_event"] == {"A": 1.0}
    flat = fold([("A", d * MS_PER_DAY) for d in range(14)])
    assert engagement_view(flat, RULES, START + 13 * MS_PER_DAY)["window_7d"]["direction"] == "stable"
    new = fold([("A", 0)])
    assert engagement_view(new, RULES, START)["window_7d"]["direction"] == "rising"


def test_account_days_are_the_sum_of_users(criteria):
    p = OfflinePipeline(criteria)
    p.feed_all(
        [group("u1", "a", 0), group("u2", "a", 0)]
        + [track(f"m{i}", f"u{i % 2 + 1}", "a", "Report Created", i * 60) for i in range(30)]
    )
    total: DayCounts = {}
    for (_a, _u), user in p.users.items():
        merge_days(total, user.days)
    assert total == p.accounts["a"].days
    view = engagement_view(p.accounts["a"].days, criteria.engagement, p.clock_for("a"))
    assert view["window_7d"]["by_event"] == {"Report Created": 300.0}


def test_new_weights_rescore_history(criteria):
    doc = copy.deepcopy(DOC)
    doc["version"] = 4
    doc["engagement"]["weights"]["Report Created"] = 1
    p = OfflinePipeline(criteria)
    p.feed_all([track("m", "u", "a", "Report Created", 0)])
    assert (
        engagement_view(p.accounts["a"].days, parse_criteria(doc).engagement, p.clock_for("a"))["window_7d"]["total"]
        == 1.0
    )


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"weights": {"Logged In": -1}}, "engagement.weights.Logged In"),
        ({"weights": [1]}, "engagement.weights"),
        ({"half_life_days": 0}, "engagement.half_life_days"),
        ({"trend_tolerance": 2}, "engagement.trend_tolerance"),
        ({"weight": {}}, "engagement.weight"),
    ],
)
def test_bad_engagement_section_names_the_field(section, field):
    doc = copy.deepcopy(DOC)
    doc["engagement"] = section
    with pytest.raises(CriteriaError) as info:
        parse_criteria(doc)
    assert info.value.field == field


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.integers(100, 160),
        st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 50), max_size=4),
        max_size=40,
    ),
    st.integers(90, 170),
    st.integers(0, 40),
)
def test_window_score_is_window_total_without_the_breakdown(days, first, width):
    rules = EngagementRules(weights=(("a", 1.5), ("b", 0.0), ("c", 0.1), ("a", 9.0)), default_weight=0.3)
    assert rules.weight("a") == 1.5 and rules.weight("d") == 0.3  # the first weight of a name wins
    assert window_score(days, rules, first, first + width) == window_total(days, rules, first, first + width)[0]
