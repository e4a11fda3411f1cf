"""The cyclic garbage collector's thresholds for processes that hold state.

A worker keeps millions of small objects alive in its account and user caches,
and an offline replay (``stream verify``, the benchmark's core run) holds every
account it replays. With CPython's defaults (700, 10, 10) a full collection
walked all of them about once a second: a quarter of a worker's CPU time in the
benchmark, a tenth of a replay's. State is freed by reference counting; the
collector is only needed for the few reference cycles (asyncio's futures and
exceptions), so it runs far less often here. Measured: README "Performance".
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
