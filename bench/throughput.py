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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    try:
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            cluster = Cluster(broker.url, broker.bootstrap, "bench", workdir)
            messages = list(generate_messages(WorkloadSpec(accounts=args.accounts, days=args.days, seed=3)))
            cluster.produce(messages)
            worker = cluster.add_worker().wait_ready()
            start = time.monotonic()
            while metric_sum(worker, "stream_account_calls_total") < len(messages):
                if time.monotonic() - start > args.timeout:
                    raise SystemExit(f"not done after {args.timeout:.0f}s")
                time.sleep(0.5)
            elapsed = time.monotonic() - start
            cluster.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = {
        "date": datetime.now(tz=UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "messages": len(messages),
        "seconds": round(elapsed, 1),
        "calls_per_second": round(len(messages) / elapsed),
    }
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"one worker, single-call messages: {result['calls_per_second']} calls/s "
          f"({result['messages']} calls in {result['seconds']} s) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
