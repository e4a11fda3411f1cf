"""Which days someone was active: a compact, order-independent day set.

Timer rules (dormant, inactive, stuck) and KPIs (DAU/MAU, retention) must be
evaluated *as of* a past midnight while events after it are already applied,
so "last seen" is not enough: they need the set of active days. An account
record carries one per member, so it is kept as two integers (the newest day
and a 64-bit mask of the days before it) rather than a list.
"""

from __future__ import annotations

import msgspec

#: Days remembered, counting back from the newest: covers a 28-day window and
#: the 28 days before it, with room for lateness.
MASK_DAYS = 64
_FULL = (1 << MASK_DAYS) - 1


class DayMask(msgspec.Struct, array_like=True, gc=False):
    """Days (days since the epoch, UTC) on which something happened.

    Adding days in any order gives the same mask: a day older than
    ``MASK_DAYS`` before the newest is dropped whether it came first or last.
    Stored as ``[newest, bits]``; a struct (not a dataclass) so that state
    records encode and decode in C, and untracked by the cycle collector
    (it holds two integers), of which a worker keeps millions.
    """

    newest: int = -1
    bits: int = 0

    def add(self, day: int) -> bool:
        """Record ``day``; True if the mask changed."""
        if self.bits == 0:
            self.newest, self.bits = day, 1
            return True
        if day > self.newest:
            self.bits = ((self.bits << (day - self.newest)) & _FULL) | 1
            self.newest = day
            return True
        back = self.newest - day
        if back >= MASK_DAYS or self.bits >> back & 1:
            return False
        self.bits |= 1 << back
        return True

    def has(self, day: int) -> bool:
        back = self.newest - day
        return self.bits != 0 and 0 <= back < MASK_DAYS and bool(self.bits >> back & 1)

    def count(self, first: int, last: int) -> int:
        """Active days in ``[first, last]``."""
        near, far = self._span(first, last)
        if near > far:
            return 0
        return ((self.bits >> near) & ((1 << (far - near + 1)) - 1)).bit_count()

    def days(self, first: int, last: int) -> list[int]:
        """The active days in ``[first, last]``, oldest first."""
        near, far = self._span(first, last)
        return [self.newest - back for back in range(far, near - 1, -1) if self.bits >> back & 1]

    def last_on_or_before(self, day: int) -> int | None:
        """The latest active day not after ``day`` (within the remembered range)."""
        near, far = self._span(day - MASK_DAYS + 1, day)
        if near > far:
            return None
        window = (self.bits >> near) & ((1 << (far - near + 1)) - 1)
        if not window:
            return None
        return self.newest - near - ((window & -window).bit_length() - 1)  # the lowest bit is the latest day

    def _span(self, first: int, last: int) -> tuple[int, int]:
        """``[first, last]`` as bit positions (0 = the newest day), nearest first;
        empty (near > far) if no remembered day falls in it. Timer rules and
        KPIs ask these questions of every member at every sweep, so they are
        answered on the bits rather than day by day."""
        if self.bits == 0:
            return 0, -1
        return max(0, self.newest - last), min(MASK_DAYS - 1, self.newest - first)

    def copy(self) -> DayMask:
        return DayMask(self.newest, self.bits)
