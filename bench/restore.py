"""Restore rate of a worker started on an empty data dir, checked key by key.

`make bench` measures the restore rate once, at the end of its 20 minutes;
this is the experiment to iterate on it (~5 min at the default size):

1. the embedded broker; a generated workload (`bench.workload`, smaller than
   the full benchmark's by default) published as Segment batch envelopes;
2. one worker ("fill") processes every call, which fills the changelogs; its
   ``/debug/digest`` is kept, and it is stopped;
3. for each mode of ``--modes``, a fresh worker on an empty data dir restores
   the tables from the changelogs: ``bulk`` is the default path, ``faust``
   sets ``STREAM_BULK_RESTORE=false`` (Faust's own recovery only, the "before"
   of an A/B on one and the same broker and changelogs);
4. each restore is checked: its ``/debug/digest`` must equal the fill
   worker's, and every table's RocksDB content (every key and value of every
   partition) must equal the fill worker's once both are stopped.

It prints, per mode, keys and changelog messages restored per second: the
restore span is from the worker's first restore log line to its last (Faust's
"Restoring state"/"Done reading", the bulk phase's own lines), and the process
start to ready time. ``--profile DIR`` records each restore worker with
py-spy (collapsed stacks, for `bench.restore --top`).

    python -m bench.restore                                  # 2,500 accounts, 25k users
    python -m bench.restore --accounts 10000 --users 100000 --tracks 200000
    python -m bench.restore --modes faust,bulk --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, TopicPartition

from bench.procs import App, Worker, restore_span
from bench.runs import PARTITIONS, counted, create_topic, publish
from bench.workload import BenchSpec, BenchWorkload
from stream.broker import EmbeddedBroker
from stream.kafka_admin import topic_end_offsets
from tests.integration.harness import metric_sum

SPEC = BenchSpec(accounts=2_500, users=25_000, tracks=50_000)
TABLES = ("accounts", "users", "directory")
#: Quick group joins; and no worker writes on its own (wall-clock ticks, idle
#: lanes whose watermark jumps to now and sweeps every account), so every
#: restore reads the changelogs the fill worker left.
OVERRIDES = {
    "STREAM_SESSION_TIMEOUT_SECONDS": "6",
    "STREAM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "STREAM_REBALANCE_TIMEOUT_SECONDS": "3",
    "STREAM_TICK_SECONDS": "86400",
    "STREAM_IDLE_LANE_SECONDS": str(365 * 86400),
}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def fill(app: App, expected: int, timeout: float) -> tuple[Worker, dict[str, Any]]:
    """A worker processes every call; returns it (stopped) and its digest."""
    worker = app.start_worker("fill").wait_ready()
    deadline = time.monotonic() + timeout
    last, last_change = -1.0, time.monotonic()
    while True:
        worker.alive()
        calls, dlq = counted([worker])
        now = time.monotonic()
        if calls != last:
            last, last_change = calls, now
        if calls >= expected or (calls + dlq >= expected and now - last_change > 5):
            break
        if now > deadline or now - last_change > 120:
            raise RuntimeError(f"fill: {calls:.0f}/{expected} calls applied, stalled; see {worker.log_path}")
        time.sleep(1.0)
    time.sleep(3)  # the last batch's changelog writes are confirmed before its offsets: let it settle
    digest = httpx.get(f"{worker.url}/debug/digest", timeout=120).json()
    worker.stop()
    return worker, digest


OFFSET_KEY = b"__faust\0offset__"
#: (table, partition) -> {key: value}
Content = dict[tuple[str, int], dict[bytes, bytes]]


def changelog_content(bootstrap: str, app_id: str) -> tuple[Content, dict[tuple[str, int], int]]:
    """Every changelog replayed (the last value of each key, tombstones
    deleting), and each partition's measured end."""
    conf = {"bootstrap.servers": bootstrap}
    content: Content = collections.defaultdict(dict)
    ends = {}
    consumer = Consumer({**conf, "group.id": "bench-restore-check", "enable.auto.commit": False})
    try:
        for table in TABLES:
            for (topic, partition), end in topic_end_offsets(conf, f"{app_id}-{table}-changelog").items():
                ends[(table, partition)] = end
                state = content[(table, partition)]
                consumer.assign([TopicPartition(topic, partition, 0)])
                offset = -1
                while offset < end - 1:
                    batch = consumer.consume(10_000, 5.0)
                    if not batch:
                        raise RuntimeError(f"{topic}[{partition}]: nothing after offset {offset}, end {end}")
                    for msg in batch:
                        if msg.error() is not None or msg.offset() >= end:
                            continue
                        offset = msg.offset()
                        if msg.value() is None:
                            state.pop(msg.key(), None)
                        else:
                            state[msg.key()] = msg.value()
    finally:
        consumer.close()
    return content, ends


def rocksdb_content(data_dir: Path) -> tuple[Content, dict[tuple[str, int], int | None]]:
    """Every (key, value) of every table partition under a stopped worker's
    data dir, and Faust's persisted offset of each."""
    from rocksdict import AccessType, Options, Rdict

    content: Content = collections.defaultdict(dict)
    offsets = {}
    for path in sorted(data_dir.rglob("*.db")):
        table, _, partition = path.name.removesuffix(".db").rpartition("-")
        if table not in TABLES:
            continue
        db = Rdict(str(path), options=Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            data = dict(db.items())
        finally:
            db.close()
        offset = data.pop(OFFSET_KEY, None)
        offsets[(table, int(partition))] = None if offset is None else int(offset)
        content[(table, int(partition))] = data
    return content, offsets


def differences(got: Content, want: Content) -> list[str]:
    out = []
    for part in sorted(set(got) | set(want)):
        a, b = got.get(part, {}), want.get(part, {})
        if a != b:
            wrong = sum(1 for k in b if a.get(k) != b[k])
            out.append(f"{part}: {wrong} keys missing or different, {len(set(a) - set(b))} extra")
    return out


def restore(app: App, mode: str, profile: Path | None, timeout: float) -> dict[str, Any]:
    app.overrides["STREAM_BULK_RESTORE"] = "false" if mode == "faust" else "true"
    worker = app.start_worker(f"restore-{mode}", wipe=True)
    spy = None
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        out = profile / f"restore-{mode}.txt"
        py_spy = Path(sys.executable).parent / "py-spy"
        cmd = [str(py_spy), "record", "--pid", str(worker.pid), "--format", "raw", "--rate", "50", "-o", str(out)]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker.wait_ready(timeout)
        ready = time.time() - worker.started_at
    finally:
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
    seconds = restore_span(worker.log_path) or ready
    samples = worker.metrics()
    digest = httpx.get(f"{worker.url}/debug/digest", timeout=120).json()
    peak_rss = worker.peak_rss()
    worker.stop()
    app.workers.remove(worker)
    keys = sum(d["keys"] for d in digest.values())
    messages = metric_sum(samples, "stream_recovery_restored_messages_total")
    return {
        "mode": mode,
        "keys": keys,
        "messages": messages,
        "seconds": round(seconds, 2),
        "ready_seconds": round(ready, 2),
        "peak_rss_mib": round(peak_rss / 2**20),
        "keys_per_s": round(keys / seconds),
        "messages_per_s": round(messages / seconds),
        "digest": digest,
        "data_dir": worker.data_dir,
    }


def top(path: Path, n: int = 25) -> str:
    """Self and inclusive time of the hottest functions of a py-spy raw profile."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    lines = [f"{total} samples"]
    lines += [f"self {c / total:6.1%}  {f}" for f, c in own.most_common(n)]
    lines += [f"incl {c / total:6.1%}  {f}" for f, c in incl.most_common(n)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int)
    parser.add_argument("--users", type=int)
    parser.add_argument("--tracks", type=int)
    parser.add_argument("--modes", default="bulk", help="restores to run, in order: bulk, faust (comma-separated)")
    parser.add_argument("--profile", type=Path, help="record each restore worker with py-spy into this dir")
    parser.add_argument("--top", type=Path, help="only print the hottest functions of a py-spy raw profile")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if args.top:
        print(top(args.top))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    spec = replace(
        SPEC,
        accounts=args.accounts or SPEC.accounts,
        users=args.users or SPEC.users,
        tracks=args.tracks if args.tracks is not None else SPEC.tracks,
    )
    workload = BenchWorkload(spec)
    workdir = Path(tempfile.mkdtemp(prefix="stream-restore-"))
    results: list[dict[str, Any]] = []
    ok = True
    try:
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            topic = "bench.batches"
            create_topic(broker.bootstrap, topic)
            sent = publish(broker.bootstrap, topic, workload.batch_messages())
            say(f"{spec.calls} calls ({spec.accounts} accounts, {spec.users} users) in {sent} batch envelopes")
            overrides = dict(OVERRIDES)
            app = App(broker.url, "bench-restore", topic, workdir, overrides=overrides, partitions=PARTITIONS)
            t = time.monotonic()
            filler, digest = fill(app, spec.calls, args.timeout)
            app.workers.clear()
            messages = sum(changelog_content(broker.bootstrap, app.app_id)[1].values())
            keys = sum(d["keys"] for d in digest.values())
            say(f"fill: {keys} keys, {messages} changelog messages in {time.monotonic() - t:.0f}s")
            reference, _offsets = rocksdb_content(filler.data_dir)
            for mode in args.modes.split(","):
                r = restore(app, mode, args.profile, args.timeout)
                # the restored worker's tables, once stopped, against its changelogs
                # replayed (what a restore must give), and against the fill worker's
                got, offsets = rocksdb_content(r.pop("data_dir"))
                want, ends = changelog_content(broker.bootstrap, app.app_id)
                wrong = differences(got, want)
                for part, end in ends.items():
                    if end and offsets.get(part) != end - 1:
                        wrong.append(f"{part}: persisted offset {offsets.get(part)}, end {end}")
                same = not wrong and r["digest"] == digest and got == reference
                ok = ok and not wrong and same
                r.update(changelog_errors=wrong, same_as_fill=same, changelog_messages=sum(ends.values()))
                say(
                    f"{mode}: {r['keys']} keys, {r['messages']:.0f} messages in {r['seconds']}s: "
                    f"{r['keys_per_s']:,} keys/s, {r['messages_per_s']:,} messages/s "
                    f"(start to ready {r['ready_seconds']}s, peak RSS {r['peak_rss_mib']} MiB); "
                    f"tables equal to the changelogs: {not wrong}, to the fill worker's: {same}"
                )
                for line in wrong[:20]:
                    say(f"  {line}")
                results.append(r)
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    if args.profile:
        for r in results:
            mode = r["mode"]
            print(f"--- {mode}\n{top(args.profile / f'restore-{mode}.txt')}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
