"""Process-wide settings a worker applies before it starts."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stream.worker.run import GC_THRESHOLDS, tune_gc


@pytest.fixture
def saved_gc_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("saved_gc_thresholds")
def test_a_worker_collects_cyclic_garbage_rarely_but_still_collects_it() -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    tune_gc()
    young, middle, old = gc.get_threshold()
    assert (young, middle, old) == GC_THRESHOLDS
    assert young >= 10_000  # a large heap is no longer walked every second
    assert gc.isenabled() and young > 0  # threshold 0 would switch collection off
