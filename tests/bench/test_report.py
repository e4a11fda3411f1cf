"""The benchmark's table: figures derived from the runs."""

from __future__ import annotations

from bench.report import build_rows, cpu_scaling_row
from bench.runs import PipelineRun, median_run


def run(workers: int, rate: float, per_cpu_second: float) -> PipelineRun:
    return PipelineRun(workers, 400_000, 400_000 / rate, rate, [0], 1.0, 0.0, True, per_cpu_second)


def test_two_workers_are_compared_per_second_of_worker_cpu_with_the_cores_they_had() -> None:
    one = run(1, 10_000, 10_000)  # one whole core
    two = run(2, 16_000, 10_000)  # as efficient, but only 1.6 cores between them
    row = cpu_scaling_row("single", two, one)
    assert row is not None
    assert row.value == 1.0
    assert "1.60 cores" in row.label
    assert row.met is None  # informative: the target is the wall-clock ratio


def test_no_cpu_comparison_when_a_run_was_too_short_to_measure_its_cpu() -> None:
    assert cpu_scaling_row("batch", run(2, 16_000, 0.0), run(1, 10_000, 10_000)) is None
    assert cpu_scaling_row("batch", run(2, 16_000, 10_000), run(1, 10_000, 0.0)) is None


def test_a_figure_run_several_times_is_their_median_and_says_their_range() -> None:
    runs = [run(1, 9_000, 9_000), run(1, 11_000, 11_000), run(1, 10_000, 10_000)]
    rows = build_rows(None, None, None, None, median_run(runs), None, None, None, None, None, None, single_runs=runs)
    (single,) = [r for r in rows if r.id == "pipeline_single"]
    assert single.value == 10_000
    assert single.label.endswith("median of 3 runs (9,000 to 11,000)")


def test_a_figure_run_once_has_the_plain_label() -> None:
    once = run(1, 10_000, 10_000)
    rows = build_rows(None, None, None, None, once, None, None, None, None, None, None, single_runs=[once])
    (single,) = [r for r in rows if r.id == "pipeline_single"]
    assert single.label == "pipeline, single-call messages, 1 worker"
