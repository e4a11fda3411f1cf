"""The benchmark's measurements: one function per phase of `make bench`.

Each run takes the broker, topics or apps it needs and returns its raw
figures: the Kafka helpers (create a topic, publish), the limit (confluent-kafka
consume + JSON decode), the pipeline runs (fresh workers on a topic published
beforehand, restore on an empty data dir), end-to-end latency, the core alone
and the naive Faust baseline. Kept apart from the command line
(`bench.throughput`: the options, the order of the phases, the broker and the
work dir) and from the table (`bench.report`: labels, ratios, targets), so a
run knows nothing of targets or of the other runs.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.procs import ROOT, App, Worker, restore_span
from bench.workload import BenchSpec, live_calls
from stream.broker import EmbeddedBroker, die_with_parent, free_port
from tests.integration.harness import metric_sum

if TYPE_CHECKING:
    from stream.core.criteria import Criteria
    from stream.core.replay import OfflinePipeline

PARTITIONS = 4


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
    #: DLQ reason -> records, over the workers
    dead_letter_reasons: dict[str, float] = field(default_factory=dict)
    #: partition-midnights swept, and the seconds they took, over the workers
    #: (none before the first call applied: the span's own)
    sweeps: float = 0.0
    sweep_seconds: float = 0.0


def dead_letter_reasons(per_worker: list[dict[str, float]]) -> dict[str, float]:
    """DLQ records per reason (the ``reason`` label) over the workers' metrics."""
    reasons: dict[str, float] = {}
    for samples in per_worker:
        for name, value in samples.items():
            if name.startswith("stream_dlq_records_total{") and value:
                reason = name.split('reason="', 1)[1].split('"', 1)[0]
                reasons[reason] = reasons.get(reason, 0.0) + value
    return reasons


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
    ready_at = time.monotonic()
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
    if calls > c0:
        seconds = max(now - t0, 1e-3)
        rate = (calls - c0) / seconds
    else:  # every call was applied by the first sample: it took at most the time since the workers were ready
        seconds = max(now - ready_at, 1e-3)
        rate = calls / seconds
    final = [w.metrics() for w in workers]
    rebalances = sum(metric_sum(samples, "stream_rebalances_total") for samples in final)
    rss = [w.peak_rss() for w in workers]
    done = calls + dlq >= expected
    reasons = dead_letter_reasons(final)
    sweeps = sum(metric_sum(samples, "stream_sweeps_total") for samples in final)
    sweep_seconds = sum(metric_sum(samples, "stream_sweep_duration_seconds_sum") for samples in final)
    return PipelineRun(
        n_workers,
        int(calls),
        seconds,
        rate,
        rss,
        rebalances,
        dlq,
        done,
        (calls - c0) / cpu,
        reasons,
        sweeps,
        sweep_seconds,
    )


def median_run(runs: list[PipelineRun]) -> PipelineRun:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


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
        # without the log lines: process start to ready (an underestimate of the rate)
        seconds = restore_span(worker.log_path) or time.time() - worker.started_at
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
                value = orjson.dumps(doc)
                while True:
                    try:
                        producer.produce(app.events_topic, key=key, value=value)
                        break
                    except BufferError:  # a rate above what the producer takes: wait for its queue
                        producer.poll(0.05)
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


def demo_criteria() -> Criteria:
    """The criteria every run of the benchmark uses (the demo's)."""
    from stream.core.criteria import load_criteria_text

    path = ROOT / "deploy" / "criteria.yaml"
    return load_criteria_text(path.read_text(), str(path))


def replay(
    messages: Iterable[tuple[bytes, bytes]], cap_seconds: float = math.inf
) -> tuple[OfflinePipeline, int, float]:
    """The calls through `stream.core.replay` (decode, route, directory,
    accounts, in memory) with the demo's criteria, each message on the input
    partition of its key, for at most ``cap_seconds``: the pipeline, the
    messages fed and the seconds it took."""
    from stream.core.partitioning import partition_for
    from stream.core.replay import OfflinePipeline

    pipeline = OfflinePipeline(demo_criteria(), input_partitions=PARTITIONS)
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
    return pipeline, events, time.perf_counter() - start


def core_run(messages: list[tuple[bytes, bytes]], cap_seconds: float) -> dict[str, float]:
    """The core's rules alone on the same calls, for at most ``cap_seconds``."""
    from stream.gc_tuning import tune_gc

    tune_gc()  # as the worker and `stream verify` run it
    _pipeline, events, seconds = replay(messages, cap_seconds)
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
