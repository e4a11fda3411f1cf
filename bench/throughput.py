"""The pipeline against raw Kafka and naive Faust, in one run (`make bench`).

A synthetic workload (10k accounts, 100k users, Zipf-skewed activity and event
mix, the demo's criteria: see `bench.workload`) is published to the embedded
broker before anything is timed, once as single-call messages and once as
Segment batch envelopes (100 calls each). Then, one after the other:

* the limit: confluent-kafka batch consume + JSON decode of the same messages;
* the naive baseline: a Faust agent, a Record model, one table ``+=`` per event
  (`bench.naive_faust`), for at most ``--naive-seconds``;
* this pipeline, one fresh worker, single-call messages, then batch envelopes;
  peak RSS of the worker and its state on disk;
* the restore rate of a worker started on an empty data dir (the batch run's state);
* two workers against one, both message forms;
* end-to-end latency (event published -> activation change / lifecycle trigger /
  alert received by a consumer) while new accounts are published live at half of
  the single-call peak.

Prints one table (each figure, its ratio to the limit, the target) and writes
JSON (``--out``). A benchmark, not a test: `--small` is the version CI runs to
keep it working (figures meaningless).

    python -m bench.throughput            # the full run (~20 min on 2 cores)
    python -m bench.throughput --small    # a few thousand calls (~1.5 min)

``BENCH_OVERRIDES=STREAM_BATCH_MAX=2000,STREAM_BATCH_WAIT_MS=50`` passes settings
to the pipeline's workers.
"""

# Layout (kept out of the docstring above, which is the --help text): this
# module is the command line and the order of the phases; the measurements
# are in `bench.runs`, the table and its targets in `bench.report`.

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.procs import App, dir_bytes
from bench.report import build_rows, render
from bench.runs import (
    PARTITIONS,
    PipelineRun,
    core_run,
    create_topic,
    latency_run,
    limit_run,
    median_run,
    naive_run,
    pipeline_run,
    publish,
    restore_run,
)
from bench.workload import SMALL, BenchSpec, BenchWorkload
from stream.broker import EmbeddedBroker

#: Quick consumer-group joins (workers are started and stopped all the time
#: here); throughput does not depend on them. BENCH_OVERRIDES wins.
GROUP_SETTINGS = {
    "STREAM_SESSION_TIMEOUT_SECONDS": "6",
    "STREAM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "STREAM_REBALANCE_TIMEOUT_SECONDS": "3",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a few thousand calls, for CI (figures meaningless)")
    parser.add_argument("--accounts", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--tracks", type=int)
    parser.add_argument("--runs", type=int, default=1, help="runs of each one-worker pipeline figure (median)")
    parser.add_argument("--naive-seconds", type=float, help="how long the naive baseline runs at most")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=120.0,
        help="single-call and two-worker runs stop after this long (the one-worker batch run always completes: "
        "it gives the state, RSS and restore figures); 0: no limit",
    )
    parser.add_argument("--core-seconds", type=float, help="how long the in-memory core replay runs at most")
    parser.add_argument("--latency-seconds", type=float, help="how long the live stream of the latency run lasts")
    parser.add_argument(
        "--only",
        default="",
        help="phases to run, comma-separated: limit,core,naive,single,batch,two,latency",
    )
    parser.add_argument("--latency-rate", type=float, help="calls/s of the latency run (default: half the single peak)")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data) and print where it is")
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args(argv)
    # stopped from outside: unwind, so every worker and the broker are stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    spec = SMALL if args.small else BenchSpec()
    spec = replace(
        spec,
        accounts=args.accounts or spec.accounts,
        users=args.users or spec.users,
        tracks=args.tracks if args.tracks is not None else spec.tracks,
    )
    naive_seconds = args.naive_seconds or (5.0 if args.small else 60.0)
    latency_seconds = args.latency_seconds or (6.0 if args.small else 30.0)
    core_seconds = args.core_seconds or (5.0 if args.small else 45.0)
    cap = args.max_seconds or None
    phases = set(args.only.split(",")) if args.only else {"limit", "core", "naive", "single", "batch", "two", "latency"}
    overrides = dict(GROUP_SETTINGS)
    overrides.update(o.split("=", 1) for o in os.environ.get("BENCH_OVERRIDES", "").split(",") if o)

    def say(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    load_before = os.getloadavg()
    started = time.monotonic()
    say(f"workload: {spec.accounts} accounts, {spec.users} users, {spec.calls} calls")
    workload = BenchWorkload(spec)
    singles = list(workload.single_messages())
    batches = list(workload.batch_messages())
    n = len(singles)
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    try:
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            bootstrap = broker.bootstrap
            single_topic, batch_topic = "bench.singles", "bench.batches"
            for topic, messages in ((single_topic, singles), (batch_topic, batches)):
                create_topic(bootstrap, topic)
                t = time.perf_counter()
                publish(bootstrap, topic, messages)
                say(f"published {len(messages)} messages to {topic} in {time.perf_counter() - t:.1f}s")
            del batches

            def app(app_id: str, topic: str) -> App:
                return App(broker.url, app_id, topic, workdir, overrides=overrides, partitions=PARTITIONS)

            def phase(name: str, fn: Callable[[], Any]) -> Any:
                if name.split(".")[0] not in phases:
                    return None
                t = time.monotonic()
                out = fn()
                say(f"{name}: {out} ({time.monotonic() - t:.0f}s)")
                return out

            limit_single = phase("limit.single", lambda: limit_run(bootstrap, single_topic, n))
            limit_batch = phase("limit.batch", lambda: limit_run(bootstrap, batch_topic, -(-n // spec.batch_size)))
            core = phase("core", functools.partial(core_run, singles, core_seconds))
            del singles
            naive = phase("naive", lambda: naive_run(broker, single_topic, workdir, n, naive_seconds))
            single_runs = [
                phase(
                    f"single.{i}",
                    lambda i=i: _pipeline(app(f"bench-single-{i}", single_topic), 1, n, args.timeout, cap),
                )
                for i in range(args.runs)
            ]
            batch_runs = [
                phase(
                    f"batch.{i}",
                    lambda i=i: _pipeline(app(f"bench-batch-{i}", batch_topic), 1, n, args.timeout, None, keep=True),
                )
                for i in range(args.runs)
            ]
            restore = None
            state_bytes = None
            if "batch" in phases:
                batch_app = app(f"bench-batch-{args.runs - 1}", batch_topic)
                state_bytes = dir_bytes(workdir / batch_app.app_id / "w0" / "data")
                restore = phase("batch.restore", lambda: restore_run(batch_app, args.timeout))
            two_single = phase(
                "two.single", lambda: _pipeline(app("bench-two-single", single_topic), 2, n, args.timeout, cap)
            )
            two_batch = phase(
                "two.batch", lambda: _pipeline(app("bench-two-batch", batch_topic), 2, n, args.timeout, cap)
            )
            # phases not asked for (--only) ran nothing
            single_runs = [r for r in single_runs if r]
            batch_runs = [r for r in batch_runs if r]
            single = median_run(single_runs) if single_runs else None
            batch = median_run(batch_runs) if batch_runs else None
            latency = None
            if single is not None or args.latency_rate:
                latency_rate = args.latency_rate or single.rate / 2
                live_topic = "bench.live"
                create_topic(bootstrap, live_topic)
                latency = phase(
                    "latency",
                    lambda: latency_run(
                        app("bench-latency", live_topic), bootstrap, spec, latency_rate, latency_seconds
                    ),
                )
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows = build_rows(
        limit_single,
        limit_batch,
        core,
        naive,
        single,
        batch,
        restore,
        state_bytes,
        two_single,
        two_batch,
        latency,
        single_runs=single_runs,
        batch_runs=batch_runs,
    )
    result = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "versions": {p: version(p) for p in ("faust-streaming", "aiokafka", "confluent-kafka", "rocksdict")},
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "small": args.small,
        "spec": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in asdict(spec).items()},
        "calls": n,
        "batch_messages": -(-n // spec.batch_size),
        "overrides": overrides,
        "seconds": round(time.monotonic() - started),
        "rows": [asdict(r) for r in rows],
        "runs": {
            "single": [asdict(r) for r in single_runs],
            "batch": [asdict(r) for r in batch_runs],
            "two_single": asdict(two_single) if two_single else None,
            "two_batch": asdict(two_batch) if two_batch else None,
            "naive": naive,
            "core": core,
            "restore": restore,
            "latency": latency,
        },
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(render(rows, result))
    print(f"-> {args.out}")
    return 0


def _pipeline(
    app: App, workers: int, expected: int, timeout: float, max_seconds: float | None, keep: bool = False
) -> PipelineRun:
    try:
        return pipeline_run(app, workers, expected, timeout, max_seconds)
    finally:
        for w in app.workers:
            w.stop()
        if not keep:
            shutil.rmtree(app.workdir / app.app_id, ignore_errors=True)
        app.workers.clear()


if __name__ == "__main__":
    raise SystemExit(main())
