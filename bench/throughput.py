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
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.procs import ROOT, App, Worker, dir_bytes, log_times
from bench.workload import BenchSpec, BenchWorkload, live_calls
from stream.broker import EmbeddedBroker, die_with_parent, free_port
from tests.integration.harness import metric_sum

SMALL = BenchSpec(accounts=200, users=2_000, tracks=6_000, days=7)
PARTITIONS = 4
#: Quick consumer-group joins (workers are started and stopped all the time
#: here); throughput does not depend on them. BENCH_OVERRIDES wins.
GROUP_SETTINGS = {
    "STREAM_SESSION_TIMEOUT_SECONDS": "6",
    "STREAM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "STREAM_REBALANCE_TIMEOUT_SECONDS": "3",
}


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


# ------------------------------------------------------------------ kafka


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(30)


def publish(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, bytes]]) -> int:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    n = 0
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if n % 5000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError(f"could not publish everything to {topic}")
    return n


def limit_run(bootstrap: str, topic: str, expected_messages: int) -> tuple[float, int]:
    """confluent-kafka batch consume + JSON decode of a whole topic: (seconds, events)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-limit-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    loads = orjson.loads
    messages = events = 0
    start = None
    deadline = time.perf_counter() + 300
    try:
        while messages < expected_messages:
            batch = consumer.consume(10_000, 0.05)
            if start is None and batch:
                start = time.perf_counter()  # timed from the first message (not the connection)
            for msg in batch:
                if msg.error() is not None:
                    continue
                doc = loads(msg.value())
                events += len(doc["batch"]) if "batch" in doc else 1
                messages += 1
            if time.perf_counter() > deadline:
                raise RuntimeError(f"limit run on {topic}: {messages}/{expected_messages} after 300s")
        assert start is not None
        return time.perf_counter() - start, events
    finally:
        consumer.close()


# ------------------------------------------------------------- pipeline


@dataclass
class PipelineRun:
    workers: int
    events: int
    seconds: float
    rate: float
    peak_rss: list[int]
    rebalances: float
    dead_letters: float
    #: every call applied (False: stopped after ``max_seconds``)
    complete: bool
    #: calls per CPU second of the workers, over the same span: less sensitive
    #: than ``rate`` to other load on the machine
    per_cpu_second: float = 0.0


def counted(workers: list[Worker]) -> tuple[float, float]:
    """(calls applied to account state, dead letters) over the workers."""
    calls = dlq = 0.0
    for w in workers:
        samples = w.metrics()
        calls += metric_sum(samples, "stream_account_calls_total")
        dlq += metric_sum(samples, "stream_dlq_records_total")
    return calls, dlq


def pipeline_run(app: App, n_workers: int, expected: int, timeout: float, max_seconds: float | None) -> PipelineRun:
    """Start ``n_workers`` fresh workers on a topic published beforehand and
    time them from the first call applied until every call is applied (or
    for ``max_seconds``, when given)."""
    workers = [app.start_worker(f"w{i}") for i in range(n_workers)]
    for w in workers:
        w.wait_ready()
    t0 = c0 = None
    cpu0 = 0.0
    last_change, last = time.monotonic(), -1.0
    deadline = time.monotonic() + timeout
    while True:
        for w in workers:
            w.alive()
        calls, dlq = counted(workers)
        now = time.monotonic()
        if t0 is None and calls > 0:
            t0, c0 = now, calls
            cpu0 = sum(w.cpu_seconds() for w in workers)
        if calls != last:
            last, last_change = calls, now
        if calls >= expected or (max_seconds is not None and t0 is not None and now - t0 >= max_seconds):
            break
        if calls + dlq >= expected and now - last_change > 5:
            break  # some calls were rejected (the DLQ): nothing more will come
        if now > deadline or now - last_change > 120:
            raise RuntimeError(f"{app.app_id}: {calls:.0f}/{expected} calls applied, stalled; see {app.workdir}")
        time.sleep(0.1 if t0 is None else 0.25)
    assert t0 is not None and c0 is not None
    cpu = max(sum(w.cpu_seconds() for w in workers) - cpu0, 1e-3)
    seconds = max(now - t0, 1e-3)
    rate = (calls - c0) / seconds if calls > c0 else calls / seconds
    rebalances = sum(metric_sum(w.metrics(), "stream_rebalances_total") for w in workers)
    rss = [w.peak_rss() for w in workers]
    done = calls + dlq >= expected
    return PipelineRun(n_workers, int(calls), seconds, rate, rss, rebalances, dlq, done, (calls - c0) / cpu)


def restore_run(app: App, timeout: float) -> dict[str, float]:
    """A worker started on an empty data dir restores the app's tables from
    their changelogs: keys (and changelog messages) per second of restore."""
    worker = app.start_worker("restore", wipe=True)
    try:
        worker.wait_ready(timeout)
        deadline = time.monotonic() + 60
        while True:  # the table gauges are refreshed every few seconds
            samples = worker.metrics()
            keys = metric_sum(samples, "stream_table_keys")
            if keys > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        restored = metric_sum(samples, "stream_recovery_restored_messages_total")
        began = log_times(worker.log_path, "Restoring state from changelog topics")
        done = log_times(worker.log_path, "Done reading from changelog topics")
        # without the log lines: process start to ready (an underestimate of the rate)
        seconds = max(done[-1] - began[0], 1e-3) if began and done else time.time() - worker.started_at
        return {"keys": keys, "messages": restored, "seconds": seconds, "peak_rss": worker.peak_rss()}
    finally:
        app.stop()


# -------------------------------------------------------------- latency


def latency_run(app: App, bootstrap: str, spec: BenchSpec, rate: float, seconds: float) -> dict[str, Any]:
    """Publish new accounts' calls at ``rate`` per second, stamped with the wall
    clock, and measure when each output record caused by them is received."""
    worker = app.start_worker("w0").wait_ready()
    outputs = [app.topic(t) for t in ("activation-changes", "lifecycle-triggers", "drift-alerts")]
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-latency-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.assign([TopicPartition(t, p, 0) for t in outputs for p in range(PARTITIONS)])
    latencies: list[float] = []
    warmup_end = time.time() + min(3.0, seconds / 4)  # first batches: joins, topic metadata
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for msg in consumer.consume(1000, 0.05):
                received = time.time()
                if msg.error() is not None:
                    continue
                stamp = orjson.loads(msg.value()).get("event_time")
                if not stamp:
                    continue
                at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                if at >= warmup_end:
                    latencies.append(received - at)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    calls = live_calls(spec, offset=int(time.time()))
    sent = 0
    start = time.monotonic()
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            while sent < rate * elapsed:
                key, doc = next(calls)
                now_ms = int(time.time() * 1000)
                doc["timestamp"] = datetime.fromtimestamp(now_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
                producer.produce(app.events_topic, key=key, value=orjson.dumps(doc))
                sent += 1
            producer.poll(0)
            time.sleep(0.002)
        producer.flush(30)
        time.sleep(3.0)  # the last outputs
    finally:
        stop.set()
        reader.join(10)
        consumer.close()
        rss = worker.peak_rss()
        app.stop()
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    return {
        "rate": sent / seconds,
        "calls": sent,
        "records": len(latencies),
        "p50": q(0.5),
        "p99": q(0.99),
        "peak_rss": rss,
    }


# ----------------------------------------------------------------- core


def core_run(messages: list[tuple[bytes, bytes]], cap_seconds: float) -> dict[str, float]:
    """The core's rules alone on the same calls: `stream.core.replay` (decode,
    route, directory, accounts, in memory), for at most ``cap_seconds``."""
    from stream.core.criteria import load_criteria_text
    from stream.core.partitioning import partition_for
    from stream.core.replay import OfflinePipeline

    path = ROOT / "deploy" / "criteria.yaml"
    pipeline = OfflinePipeline(load_criteria_text(path.read_text(), str(path)), input_partitions=PARTITIONS)
    offsets = [0] * PARTITIONS
    events = 0
    start = time.perf_counter()
    for key, value in messages:
        partition = partition_for(key.decode(), PARTITIONS)
        pipeline.feed(value, partition=partition, offset=offsets[partition])
        offsets[partition] += 1
        events += 1
        if events % 1000 == 0 and time.perf_counter() - start > cap_seconds:
            break
    seconds = time.perf_counter() - start
    return {"events": events, "seconds": seconds, "rate": events / seconds}


# ---------------------------------------------------------------- naive


def naive_run(broker: EmbeddedBroker, topic: str, workdir: Path, expected: int, cap_seconds: float) -> dict[str, float]:
    """The naive Faust baseline on the same topic, for at most ``cap_seconds``
    after its first event."""
    import subprocess

    progress = workdir / "naive-progress.txt"
    env = dict(
        os.environ,
        BENCH_BROKER=broker.url,
        BENCH_TOPIC=topic,
        BENCH_APP="bench-naive",
        BENCH_DATA=str(workdir / "naive-data"),
        BENCH_WEB_PORT=str(free_port()),
        BENCH_PROGRESS=str(progress),
        PYTHONPATH=str(ROOT),
    )
    log = open(workdir / "naive.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.naive_faust", "worker"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=str(workdir),
        start_new_session=True,
        preexec_fn=die_with_parent,
    )

    def read() -> tuple[int, float]:
        try:
            count, at = progress.read_text().split()
            return int(count), float(at)
        except (OSError, ValueError):
            return 0, 0.0

    try:
        deadline = time.monotonic() + 180
        first: tuple[int, float] | None = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"naive Faust exited ({proc.returncode}); see {workdir / 'naive.log'}")
            count, at = read()
            if first is None and count > 0:
                first = (count, at)
            if first is not None and (count >= expected or at - first[1] >= cap_seconds):
                break
            if time.monotonic() > deadline and first is None:
                raise RuntimeError("naive Faust processed nothing in 180s")
            time.sleep(0.25)
        assert first is not None
        seconds = max(at - first[1], 1e-3)
        return {"events": count - first[0], "seconds": seconds, "rate": (count - first[0]) / seconds}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except Exception:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------ main


def median_run(runs: list[PipelineRun]) -> PipelineRun:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


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
            single = median_run([r for r in single_runs if r]) if any(single_runs) else None
            batch = median_run([r for r in batch_runs if r]) if any(batch_runs) else None
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
        limit_single, limit_batch, core, naive, single, batch, restore, state_bytes, two_single, two_batch, latency
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
            "single": [asdict(r) for r in single_runs if r],
            "batch": [asdict(r) for r in batch_runs if r],
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
) -> list[Row]:
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
                "pipeline, single-call messages, 1 worker",
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
                "pipeline, batch envelopes (100 calls), 1 worker",
                batch.rate,
                "events/s",
                ratio(batch.rate, lb),
                ">= 100,000",
                batch.rate >= 100_000,
            )
        )
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


if __name__ == "__main__":
    raise SystemExit(main())
