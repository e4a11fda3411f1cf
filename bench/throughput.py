"""Baseline throughput of one worker on the embedded broker.

Publishes the synthetic workload first, then starts one `stream worker` and
times how long it takes until every call is applied to account state. Prints
one line and writes JSON (bench-results.json). A benchmark, not a test.

    python -m bench.throughput --accounts 100 --days 14
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from stream.broker import EmbeddedBroker
from stream.workload import WorkloadSpec, generate_messages
from tests.integration.harness import Cluster, WorkerProcess


def metric_sum(worker: WorkerProcess, name: str) -> float:
    total = 0.0
    for line in worker.get("/metrics").text.splitlines():
        if line.startswith(name) and "_created" not in line:
            total += float(line.split()[-1])
    return total


def one_run(
    broker: EmbeddedBroker,
    workdir: Path,
    run: int,
    messages: list[tuple[bytes, bytes]],
    overrides: dict[str, str],
    timeout: float,
) -> float:
    """Seconds one fresh worker takes to apply every call (topics published beforehand)."""
    cluster = Cluster(broker.url, broker.bootstrap, f"bench{run}", workdir / f"run{run}", overrides=overrides)
    cluster.produce(messages)
    try:
        worker = cluster.add_worker().wait_ready()
        start = time.monotonic()
        while metric_sum(worker, "stream_account_calls_total") < len(messages):
            if time.monotonic() - start > timeout:
                raise SystemExit(f"not done after {timeout:.0f}s")
            time.sleep(0.2)
        return time.monotonic() - start
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args()
    overrides = dict(o.split("=", 1) for o in os.environ.get("BENCH_OVERRIDES", "").split(",") if o)
    messages = list(generate_messages(WorkloadSpec(accounts=args.accounts, days=args.days, seed=3)))
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    try:
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            rates = sorted(
                len(messages) / one_run(broker, workdir, run, messages, overrides, args.timeout)
                for run in range(args.runs)
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "messages": len(messages),
        "runs": [round(r) for r in rates],
        "calls_per_second_median": round(statistics.median(rates)),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"one worker, single-call messages, {len(messages)} calls: median {result['calls_per_second_median']} "
        f"calls/s (runs: {', '.join(map(str, result['runs']))}) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
