"""The garbage collector thresholds of the processes that hold state."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from stream.cli import main
from stream.gc_tuning import GC_THRESHOLDS, tune_gc

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def saved_gc_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("saved_gc_thresholds")
def test_cyclic_garbage_is_collected_rarely_but_still_collected() -> None:
    gc.set_threshold(700, 10, 10)  # CPython's defaults
    tune_gc()
    young, middle, old = gc.get_threshold()
    assert (young, middle, old) == GC_THRESHOLDS
    assert young >= 10_000  # a large heap is no longer walked every second
    assert gc.isenabled() and young > 0  # threshold 0 would switch collection off


@pytest.mark.usefixtures("saved_gc_thresholds")
def test_every_command_runs_with_the_tuned_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    assert main(["criteria", "check", str(ROOT / "deploy" / "criteria.yaml")]) == 0
    assert gc.get_threshold() == GC_THRESHOLDS
