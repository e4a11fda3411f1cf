"""Restarts: nothing double-counted after a kill, nothing lost from changelogs."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml
from confluent_kafka import Producer

from stream.core.criteria import parse_criteria
from stream.core.routing import DirectoryEntry
from stream.kafka_admin import topic_end_offsets
from stream.workload import WorkloadSpec, generate_messages
from tests.integration.expectations import converged, expected_views, offline
from tests.integration.harness import ROOT, Cluster, metric_sum, parse_metrics, wait_until

SPEC = WorkloadSpec(accounts=16, days=10, seed=5)


def criteria():
    return parse_criteria(yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text()))


def test_kill_and_replay_double_counts_nothing(clusters: dict[str, Cluster]):
    cluster = clusters["restart"]
    messages = list(generate_messages(SPEC))
    expected = expected_views(offline(criteria(), messages))
    worker = cluster.workers[0]

    def progress() -> float:
        line = [x for x in worker.get("/metrics").text.splitlines() if x.startswith('stream_events_total{type="track"')]
        return float(line[0].split()[-1]) if line else 0.0

    cluster.produce(messages)
    wait_until(lambda: progress() > len(messages) / 4, 60, 0.05, "the worker to be mid-stream")
    worker.kill()  # SIGKILL: no commit, no flush
    worker.start().wait_ready()
    wait_until(lambda: converged(worker, expected), 180, 1.0, "state to match the offline run after the kill")
    # producer retries: the first 1000 calls published again (same messageIds)
    cluster.produce(messages[:1000])
    cluster.produce([(b"marker", messages[-1][1])])  # something to wait for after them

    def retries_consumed() -> bool:
        return (
            "stream_duplicates_skipped_total" in (m := worker.get("/metrics").text)
            and float(next(x for x in m.splitlines() if x.startswith("stream_duplicates_skipped_total")).split()[-1])
            >= 1000
        )

    wait_until(retries_consumed, 120, 0.5, "the retried calls to be skipped")
    assert converged(worker, expected)


BATCHES, PER_BATCH = 3, 50
INJECTED = 4 * BATCHES * PER_BATCH


def inject_batches(cluster: Cluster) -> None:
    """Append multi-record batches of new directory entries to every changelog
    partition: the case where an under-reported high watermark loses records."""
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 100, "batch.num.messages": 1000})
    topic = f"{cluster.app_id}-directory-changelog"
    n = 0
    for _batch in range(BATCHES):
        for partition in range(4):
            for _ in range(PER_BATCH):
                producer.produce(
                    topic, key=f"injected-{n:04d}".encode(), value=DirectoryEntry().to_bytes(), partition=partition
                )
                n += 1
        assert producer.flush(30) == 0


def test_restart_on_empty_data_dir_recovers_every_key(clusters: dict[str, Cluster]):
    cluster = clusters["restart"]
    worker = cluster.workers[0]
    before = worker.get("/debug/digest").json()
    assert before["accounts"]["keys"] > SPEC.accounts and before["users"]["keys"] > SPEC.accounts
    worker.stop()
    inject_batches(cluster)
    data_dir = Path(worker.env["STREAM_DATA_DIR"])
    shutil.rmtree(data_dir)
    data_dir.mkdir()
    log_start = worker.log_path.stat().st_size
    worker.start().wait_ready()
    after = wait_until(lambda: worker.get("/debug/digest").json(), 30, what="digest")
    assert after["accounts"] == before["accounts"]
    assert after["users"] == before["users"]
    assert after["directory"]["keys"] == before["directory"]["keys"] + INJECTED
    # restored by the bulk phase, every changelog message counted once
    log = worker.log_path.read_bytes()[log_start:].decode(errors="replace")
    assert re.search(r"Bulk restore: done, .*; 0 of \d+ partitions left to Faust's recovery", log), log[-3000:]
    conf = {"bootstrap.servers": cluster.bootstrap}
    tables = ("accounts", "users", "directory")
    messages = sum(sum(topic_end_offsets(conf, f"{cluster.app_id}-{t}-changelog").values()) for t in tables)
    samples = parse_metrics(worker.get("/metrics").text)
    assert metric_sum(samples, "stream_recovery_restored_messages_total") == messages
    wait_until(
        lambda: metric_sum(parse_metrics(worker.get("/metrics").text), "stream_recovery_remaining_messages") == 0,
        10,
        what="no recovery left",
    )


def test_verify_agrees_with_the_live_state(clusters: dict[str, Cluster], tmp_path: Path):
    """`stream verify` recomputes everything from the input topic and compares it over HTTP."""
    cluster = clusters["restart"]
    worker = cluster.workers[0]
    env_port = worker.env["STREAM_WEB_PORT"]
    done = cluster.run("verify", "--url", f"http://127.0.0.1:{env_port}")
    out = done.stdout.decode()
    assert done.returncode == 0, out + done.stderr.decode()
    assert "0 differ" in out and "OK: live state equals the offline run" in out
    checked = int(out.split("checked ")[1].split()[0])
    assert checked > SPEC.accounts * 3
    # and it does notice when things differ: judge the same state by other criteria
    doc = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())
    doc["activation_threshold"] = 0.5
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(doc))
    differs = cluster.run("verify", "--url", f"http://127.0.0.1:{env_port}", "--criteria", str(other))
    assert differs.returncode == 1
    assert b"DIFFERENCES FOUND" in differs.stdout and b"/accounts/acct-" in differs.stdout
