from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.daybits import MASK_DAYS, count_days, last_on_or_before

DAY0 = 20_000


def days_of(newest: int, bits: int) -> set[int]:
    """The days a ``(newest, bits)`` pair stands for, bit by bit."""
    return {newest - back for back in range(MASK_DAYS) if bits >> back & 1}


@settings(max_examples=500, deadline=None)
@given(
    st.integers(DAY0, DAY0 + 100),
    st.integers(0, (1 << MASK_DAYS) - 1),
    st.integers(DAY0 - 80, DAY0 + 200),
    st.integers(0, 100),
)
def test_answers_agree_with_the_set_of_days_for_any_bits(newest, bits, first, width):
    """Any pair, not only those ``DayMask.add`` builds (whose newest bit is
    always set): the shortcut for a day at or after the newest must not assume it."""
    days = days_of(newest, bits)
    last = first + width
    assert count_days(newest, bits, first, last) == len([d for d in days if first <= d <= last])
    before = [d for d in days if first - MASK_DAYS < d <= first]
    assert last_on_or_before(newest, bits, first) == (max(before) if before else None)


def test_a_day_far_after_the_newest_is_outside_the_remembered_range():
    assert last_on_or_before(DAY0, 1, DAY0 + MASK_DAYS - 1) == DAY0
    assert last_on_or_before(DAY0, 1, DAY0 + MASK_DAYS) is None
    assert last_on_or_before(DAY0, 0, DAY0) is None
