from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stream.core.clock import PartitionClock, TimeRules
from stream.core.timeutil import MS_PER_DAY

H = 3_600_000
RULES = TimeRules(allowed_lateness_ms=H, idle_ms=10_000)
DAY0 = 20_000 * MS_PER_DAY


def test_lateness_is_judged_against_the_calls_own_input_partition():
    c = PartitionClock()
    top = DAY0 + 5 * H  # what the call's input partition had reached
    assert not c.is_late(top, DAY0 + 4 * H + 1, RULES)
    assert c.is_late(top, DAY0 + 4 * H - 1, RULES)
    # whatever other lanes reached does not matter
    c.observe("other", DAY0 + 50 * H, 0)
    assert not c.is_late(DAY0, DAY0, RULES)


def test_watermark_is_the_slowest_active_lane_minus_lateness():
    c = PartitionClock()
    c.observe("a", DAY0 + 10 * H, 0)
    c.observe("b", DAY0 + 3 * H, 0)
    assert c.watermark(RULES, 1_000) == DAY0 + 2 * H
    # b goes quiet for longer than idle_ms: a alone drives it
    c.observe("a", DAY0 + 11 * H, 9_000)
    assert c.watermark(RULES, 12_000) == DAY0 + 10 * H


def test_expected_lane_that_never_delivered_holds_the_watermark_until_idle():
    c = PartitionClock.load(None, 0, ("a", "b"))
    c.observe("a", DAY0 + 10 * H, 1_000)
    assert c.watermark(RULES, 2_000) == 0
    assert c.watermark(RULES, 10_500) == DAY0 + 9 * H


def test_all_idle_follows_the_wall_clock_and_never_goes_back():
    c = PartitionClock()
    c.observe("a", DAY0 + 10 * H, 0)
    assert c.watermark(RULES, 5_000) == DAY0 + 9 * H
    assert c.watermark(RULES, 60_000) == DAY0 + 9 * H + 60_000
    c.observe("b", DAY0, 61_000)  # a slow lane wakes up: the watermark stays
    assert c.watermark(RULES, 61_000) == DAY0 + 9 * H + 60_000


def test_due_midnights_start_after_the_earliest_event_and_are_not_repeated():
    c = PartitionClock()
    c.observe("a", DAY0 + 5 * H, 0)
    c.observe("a", DAY0 + 3 * MS_PER_DAY + 2 * H, 0)
    w = c.watermark(RULES, 0)
    assert c.due_midnights(w) == [DAY0 + MS_PER_DAY, DAY0 + 2 * MS_PER_DAY, DAY0 + 3 * MS_PER_DAY]
    c.swept = DAY0 + 3 * MS_PER_DAY
    assert c.due_midnights(w) == []
    # lateness is the call's own partition's business, not the sweeps'
    assert not c.is_late(DAY0 + 3 * MS_PER_DAY, DAY0 + 3 * MS_PER_DAY - 1, RULES)


def test_round_trip_keeps_lanes_and_sweeps():
    c = PartitionClock()
    c.observe("a", DAY0, 0)
    c.swept = DAY0
    c.watermark(RULES, 0)
    d = PartitionClock.load(c.dump(), 5, ())
    assert (d.lanes, d.swept, d.floor, d.earliest) == (c.lanes, c.swept, c.floor, c.earliest)
    assert d.heard == {"a": 5}
    assert PartitionClock.load(b"12345", 0).lanes == {}  # the bare clock of earlier versions


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 10 * MS_PER_DAY)), max_size=60))
def test_late_decisions_do_not_depend_on_how_lanes_interleave(calls):
    """Each call carries its input partition's running maximum: interleave the
    same per-lane sequences differently and the same calls are late."""
    tops: dict[str, int] = {}
    carried = []
    for lane, ts in calls:
        tops[lane] = max(tops.get(lane, 0), DAY0 + ts)
        carried.append((lane, DAY0 + ts, tops[lane]))

    def late(order):
        c = PartitionClock()
        return {i for i in order if c.is_late(carried[i][2], carried[i][1], RULES)}

    in_order = list(range(len(calls)))
    by_lane = sorted(in_order, key=lambda i: calls[i][0])
    assert late(in_order) == late(by_lane)


def test_the_first_hop_resumes_with_the_running_maximum_at_its_offset():
    from stream.core.clock import LANE_HISTORY, lane_max_before, record_lane_max

    history: list[list[int]] = []
    for next_offset, top in ((100, 5), (250, 9), (400, 9), (600, 14)):
        history = record_lane_max(history, next_offset, top)
    assert lane_max_before(history, 0) == 0  # nothing read yet
    assert lane_max_before(history, 250) == 9  # a committed batch boundary: exact
    assert lane_max_before(history, 399) == 9
    assert lane_max_before(history, 600) == 14
    # a restart at 250 records the same boundaries again: nothing changes
    assert record_lane_max(history, 400, 9) == history
    long: list[list[int]] = []
    for n in range(1, LANE_HISTORY + 50):
        long = record_lane_max(long, n * 10, n)
    assert len(long) == LANE_HISTORY and long[-1] == [(LANE_HISTORY + 49) * 10, LANE_HISTORY + 49]
