from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.activity import MASK_DAYS, DayMask

DAY0 = 20_000


def remembered(days: list[int]) -> set[int]:
    """The days a mask keeps: those within MASK_DAYS of the newest."""
    if not days:
        return set()
    newest = max(days)
    return {d for d in days if newest - d < MASK_DAYS}


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(DAY0, DAY0 + 150), max_size=40),
    st.integers(DAY0 - 80, DAY0 + 230),
    st.integers(0, 100),
)
def test_queries_answer_as_the_set_of_remembered_days(days, first, width):
    """count, days and last_on_or_before agree with a plain set of days,
    whatever the order the days were added in and whatever the range asked."""
    mask = DayMask()
    for d in days:
        mask.add(d)
    kept = remembered(days)
    last = first + width
    inside = sorted(d for d in kept if first <= d <= last)
    assert mask.days(first, last) == inside
    assert mask.count(first, last) == len(inside)
    before = [d for d in kept if first - MASK_DAYS < d <= first]
    assert mask.last_on_or_before(first) == (max(before) if before else None)
    assert all(mask.has(d) == (d in kept) for d in range(first, last + 1))


def test_an_empty_mask_has_no_days():
    mask = DayMask()
    assert mask.days(0, 10**6) == [] and mask.count(0, 10**6) == 0 and mask.last_on_or_before(10**6) is None
