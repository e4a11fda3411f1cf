"""Free memory goes back to the system, and the worker does it on a timer."""

from __future__ import annotations

from pathlib import Path

from stream.settings import load_settings
from stream.worker.app import ActivationWorker
from stream.worker.memory import release_free_memory
from tests.worker.offline import offline_worker


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_freed_buffers_pinned_by_survivors_are_returned() -> None:
    """The batch pattern: many few-KB buffers, most freed, a few kept alive
    among them so the heap cannot simply shrink from its top."""
    buffers = [bytes(4096) + i.to_bytes(4, "big") for i in range(40_000)]  # ~160 MB
    survivors = buffers[::64]
    del buffers
    before = resident_bytes()
    assert release_free_memory() is True  # glibc, as in the worker's image
    after = resident_bytes()
    assert before - after > 100 * 2**20, (before, after)
    assert len(survivors) == 625


def timed(w: ActivationWorker) -> set[str]:
    """The names of the worker's methods that Faust runs on a timer."""
    names = set()
    for task in w.app._app_tasks:
        fun = task
        while hasattr(fun, "__wrapped__"):
            fun = fun.__wrapped__
        names.add(getattr(fun, "__name__", ""))
    return names


def test_the_worker_trims_on_a_timer_unless_switched_off(tmp_path: Path) -> None:
    assert "_release_free_memory" in timed(offline_worker(tmp_path / "on"))
    assert "_release_free_memory" not in timed(offline_worker(tmp_path / "off", memory_trim_seconds=0))


def test_the_trim_interval_is_a_setting() -> None:
    assert load_settings({}).memory_trim_seconds == 5.0
    assert load_settings({"STREAM_MEMORY_TRIM_SECONDS": "0"}).memory_trim_seconds == 0.0
