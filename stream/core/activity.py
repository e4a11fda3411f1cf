"""Which days someone was active: a compact, order-independent day set.

Timer rules (dormant, inactive, stuck) and KPIs (DAU/MAU, retention) must be
evaluated *as of* a past midnight while events after it are already applied,
so "last seen" is not enough: they need the set of active days. An account
record carries one per member, so it is kept as two integers (the newest day
and a 64-bit mask of the days before it) rather than a list.
"""

from __future__ import annotations

import msgspec

from stream.core.daybits import MASK_DAYS, count_days, last_on_or_before, span

__all__ = ["MASK_DAYS", "DayMask"]

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
        return count_days(self.newest, self.bits, first, last)

    def days(self, first: int, last: int) -> list[int]:
        """The active days in ``[first, last]``, oldest first."""
        near, far = span(self.newest, self.bits, first, last)
        return [self.newest - back for back in range(far, near - 1, -1) if self.bits >> back & 1]

    def last_on_or_before(self, day: int) -> int | None:
        """The latest active day not after ``day`` (within the remembered range)."""
        return last_on_or_before(self.newest, self.bits, day)

    def copy(self) -> DayMask:
        return DayMask(self.newest, self.bits)
