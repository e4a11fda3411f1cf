"""The cyclic garbage collector's thresholds for processes that hold state.

A worker keeps millions of small objects alive in its account and user caches,
and an offline replay (``stream verify``, the benchmark's core run) holds every
account it replays. With CPython's defaults (700, 10, 10) a full collection
walked all of them about once a second: a quarter of a worker's CPU time in the
benchmark, a tenth of a replay's. State is freed by reference counting; the
collector is only needed for the few reference cycles (asyncio's futures and
exceptions), so it runs far less often here.

The first threshold is high because a young collection walks every young
object still alive, and a worker's are mostly states it decoded for a batch
and keeps in its caches: at 50,000 allocations they were walked a few times a
second (~8% of a batch-envelope worker's CPU), and then again when promoted.
At 1,000,000 most of them have left the caches before a collection comes; one
then takes ~0.3 s, well inside the latency target. Measured: README
"Performance".
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (1_000_000, 20, 100)


def tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
