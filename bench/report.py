"""The benchmark's table: raw figures -> rows, and the rows printed.

:func:`build_rows` turns what the runs of `bench.runs` return into one
:class:`Row` per figure (its value, its ratio to the limit of its message
form, the target and whether it is met); :func:`render` prints them. The
labels, ratios and targets are what ``bench-results.json`` and
`tests/bench` read, so they live here in one place, apart from the Kafka
and process code of the runs and from the command line (`bench.throughput`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.runs import PipelineRun


@dataclass
class Row:
    id: str
    label: str
    value: float
    unit: str
    #: the figure over the limit of its message form (throughput and restore rates only)
    ratio_to_limit: float | None = None
    target: str = ""
    met: bool | None = None


def build_rows(
    limit_single: tuple[float, int] | None,
    limit_batch: tuple[float, int] | None,
    core: dict[str, float] | None,
    naive: dict[str, float] | None,
    single: PipelineRun | None,
    batch: PipelineRun | None,
    restore: dict[str, float] | None,
    state_bytes: int | None,
    two_single: PipelineRun | None,
    two_batch: PipelineRun | None,
    latency: dict[str, Any] | None,
    *,
    single_runs: Sequence[PipelineRun] = (),
    batch_runs: Sequence[PipelineRun] = (),
) -> list[Row]:
    """``single`` and ``batch`` are the medians of ``single_runs`` and
    ``batch_runs`` when these hold more than one run (``--runs``)."""
    ls = limit_single[1] / limit_single[0] if limit_single else None
    lb = limit_batch[1] / limit_batch[0] if limit_batch else None

    def ratio(value: float, limit: float | None) -> float | None:
        return round(value / limit, 4) if limit else None

    rows: list[Row] = []
    if ls is not None:
        rows.append(
            Row(
                "limit_single",
                "limit: confluent-kafka consume + JSON decode, single-call messages",
                ls,
                "events/s",
                1.0,
            )
        )
    if lb is not None:
        rows.append(
            Row("limit_batch", "limit: confluent-kafka consume + JSON decode, batch envelopes", lb, "events/s", 1.0)
        )
    if core is not None:
        label = f"core alone: in-memory replay, no Kafka ({core['events']:,.0f} calls)"
        rows.append(Row("core_offline", label, core["rate"], "events/s", ratio(core["rate"], ls)))
    if naive is not None:
        rows.append(
            Row(
                "naive_faust",
                "naive Faust: Record model, one table += per event",
                naive["rate"],
                "events/s",
                ratio(naive["rate"], ls),
            )
        )
    if single is not None:
        rows.append(
            Row(
                "pipeline_single",
                median_label("pipeline, single-call messages, 1 worker", single_runs),
                single.rate,
                "events/s",
                ratio(single.rate, ls),
                ">= 12,000",
                single.rate >= 12_000,
            )
        )
    if batch is not None:
        rows.append(
            Row(
                "pipeline_batch",
                median_label("pipeline, batch envelopes (100 calls), 1 worker", batch_runs),
                batch.rate,
                "events/s",
                ratio(batch.rate, lb),
                ">= 100,000",
                batch.rate >= 100_000,
            )
        )
    for name, run in (("single", single), ("batch", batch)):
        if run is not None:
            rows.append(sweep_row(name, run))
    if two_single is not None:
        rows.append(
            Row(
                "two_workers_single",
                "pipeline, single-call messages, 2 workers",
                two_single.rate,
                "events/s",
                ratio(two_single.rate, ls),
            )
        )
        if single is not None:
            x = two_single.rate / single.rate
            rows.append(
                Row("scaling_single", "2 workers / 1 worker, single-call messages", x, "x", None, ">= 1.7", x >= 1.7)
            )
            cpu_row = cpu_scaling_row("single", two_single, single)
            if cpu_row is not None:
                rows.append(cpu_row)
    if two_batch is not None:
        rows.append(
            Row(
                "two_workers_batch",
                "pipeline, batch envelopes, 2 workers",
                two_batch.rate,
                "events/s",
                ratio(two_batch.rate, lb),
            )
        )
        if batch is not None:
            x = two_batch.rate / batch.rate
            rows.append(Row("scaling_batch", "2 workers / 1 worker, batch envelopes", x, "x", None, ">= 1.7", x >= 1.7))
            cpu_row = cpu_scaling_row("batch", two_batch, batch)
            if cpu_row is not None:
                rows.append(cpu_row)
    if latency is not None:
        label = f"at {latency['rate']:,.0f} calls/s (half the single-call peak), {latency['records']} records"
        rows.append(Row("latency_p50", f"event -> output record p50 {label}", latency["p50"], "s"))
        rows.append(
            Row(
                "latency_p99",
                f"event -> output record p99 {label}",
                latency["p99"],
                "s",
                None,
                "< 1 s",
                latency["p99"] < 1.0,
            )
        )
    rss = [r for run in (single, batch) if run for r in run.peak_rss] + ([restore["peak_rss"]] if restore else [])
    if rss:
        mb = max(rss) / 2**20
        rows.append(
            Row("peak_rss", "peak RSS per worker (one-worker runs, restore)", mb, "MiB", None, "<= 1024", mb <= 1024)
        )
    if state_bytes is not None:
        rows.append(
            Row("state_on_disk", "state on disk (RocksDB, all tables, after the batch run)", state_bytes / 2**20, "MiB")
        )
    if restore is not None:
        rate = restore["keys"] / restore["seconds"]
        label = (
            f"restore on an empty data dir ({restore['keys']:,.0f} keys, {restore['messages']:,.0f} changelog messages)"
        )
        rows.append(Row("restore", label, rate, "keys/s", ratio(rate, ls), ">= 50,000", rate >= 50_000))
    return rows


def median_label(label: str, runs: Sequence[PipelineRun]) -> str:
    """A one-worker figure run several times is their median; its label says
    of how many runs and their range, which is the honest size of a figure
    on a machine where runs of the same code differ by a fifth."""
    if len(runs) < 2:
        return label
    rates = sorted(r.rate for r in runs)
    return f"{label}, median of {len(runs)} runs ({rates[0]:,.0f} to {rates[-1]:,.0f})"


def sweep_row(name: str, run: PipelineRun) -> Row:
    """How much of a one-worker run went to midnight sweeps. The workload
    packs its days of calls into a minute or two, so every midnight's sweep
    of every account falls inside the run; a deployment sweeps once a day."""
    label = (
        f"  of which midnight sweeps, {name}: {run.sweeps:,.0f} partition-midnights, "
        f"{run.sweep_seconds:,.1f} s of {run.seconds:,.1f} s"
    )
    return Row(f"sweeps_{name}", label, 100 * run.sweep_seconds / run.seconds, "% of run")


def cpu_scaling_row(name: str, two: PipelineRun, one: PipelineRun) -> Row | None:
    """Two workers against one in calls per second of worker CPU, with the
    cores the two workers had: the wall-clock ratio above is capped by the
    machine once one worker takes a whole core of a two-core machine that
    the broker and the benchmark share, and this says whether the pipeline
    or the machine was the limit. None when a run was too short to measure
    its CPU (every call applied before the first sample)."""
    if not (two.per_cpu_second and one.per_cpu_second):
        return None
    cores = two.rate / two.per_cpu_second
    label = f"  2 workers / 1 worker, {name}, per second of worker CPU (the 2 workers had {cores:.2f} cores)"
    return Row(f"cpu_scaling_{name}", label, two.per_cpu_second / one.per_cpu_second, "x")


def render(rows: list[Row], result: dict[str, Any]) -> str:
    head = (
        f"{result['date']}  {result['machine']}  {result['calls']:,} calls "
        f"({result['spec']['accounts']:,} accounts, {result['spec']['users']:,} users)  "
        f"load {result['load_average']['before'][0]} -> {result['load_average']['after'][0]}"
    )
    lines = [head, ""]
    width = max(len(r.label) for r in rows) if rows else 10
    lines.append(f"{'figure':<{width}}  {'value':>12}  {'unit':<8}  {'vs limit':>8}  {'target':<10}  met")
    for r in rows:
        value = f"{r.value:,.0f}" if r.value >= 100 else f"{r.value:,.3f}"
        ratio = "" if r.ratio_to_limit is None else f"{r.ratio_to_limit:.3f}"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append(f"{r.label:<{width}}  {value:>12}  {r.unit:<8}  {ratio:>8}  {r.target:<10}  {met}")
    return "\n".join(lines)
