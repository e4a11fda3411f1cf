"""Questions about a day set kept as ``(newest, bits)`` (see :class:`DayMask`).

They live here, as functions of two integers, rather than only as methods of
:class:`~stream.core.activity.DayMask`: a msgspec struct's methods stay
interpreted, and the midnight sweeps ask them of every member of every account
(a quarter of a sweep's time was these methods' calls). Here they are compiled
with the rest of the core, and the sweeps call them directly.
"""

from __future__ import annotations

#: Days remembered, counting back from the newest (bit 0 is the newest day):
#: covers a 28-day window and the 28 days before it, with room for lateness.
MASK_DAYS = 64


def span(newest: int, bits: int, first: int, last: int) -> tuple[int, int]:
    """``[first, last]`` as bit positions (0 = the newest day), nearest first;
    empty (near > far) if no remembered day falls in it."""
    if bits == 0:
        return 0, -1
    return max(0, newest - last), min(MASK_DAYS - 1, newest - first)


def count_days(newest: int, bits: int, first: int, last: int) -> int:
    """Active days in ``[first, last]``."""
    near, far = span(newest, bits, first, last)
    if near > far:
        return 0
    return ((bits >> near) & ((1 << (far - near + 1)) - 1)).bit_count()


def last_on_or_before(newest: int, bits: int, day: int) -> int | None:
    """The latest active day not after ``day`` (within the remembered range)."""
    if bits == 0:
        return None
    if newest <= day and bits & 1:  # the common case at a sweep: the newest day is the answer
        return newest if day - newest < MASK_DAYS else None
    near, far = span(newest, bits, day - MASK_DAYS + 1, day)
    if near > far:
        return None
    window = (bits >> near) & ((1 << (far - near + 1)) - 1)
    if not window:
        return None
    return newest - near - ((window & -window).bit_length() - 1)  # the lowest bit is the latest day
