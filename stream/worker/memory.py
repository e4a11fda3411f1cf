"""Giving memory the allocator holds but no longer uses back to the system.

A worker's batches allocate many short-lived buffers of a few kilobytes (each
account and user record encoded, its changelog message, RocksDB's write batch).
glibc's malloc keeps the pages they freed inside its heap, and a later batch
allocates around the ones still alive, so the resident size creeps up to well
above what Python holds: the benchmark's batch-envelope worker peaked at
927-1,035 MiB. ``malloc_trim`` hands the free pages back; every 5 s it took the
same run's peak to 813-835 MiB (README "Performance").
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system; False where that is
    not possible (nothing is done then)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
