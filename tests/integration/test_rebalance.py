"""Partitions move while calls flow: a second worker joins mid-stream, then leaves."""

from __future__ import annotations

from stream.workload import WorkloadSpec, generate_messages
from tests.integration.harness import Cluster, WorkerProcess, wait_until

SPEC = WorkloadSpec(accounts=40, days=10, seed=21)


def applied(worker: WorkerProcess) -> float:
    lines = [x for x in worker.get("/metrics").text.splitlines() if x.startswith("stream_account_calls_total{")]
    return sum(float(x.split()[-1]) for x in lines)


def test_worker_joins_and_leaves_mid_stream(clusters: dict[str, Cluster]):
    cluster = clusters["criteria"]  # what earlier tests published there is part of the check too
    first = cluster.workers[0]
    messages = list(generate_messages(SPEC))
    quarter = len(messages) // 4
    cluster.produce(messages[:quarter])
    joiner = cluster.add_worker("joiner")  # the group rebalances while the first quarter is processed
    cluster.produce(messages[quarter : 2 * quarter])
    joiner.wait_ready()
    cluster.produce(messages[2 * quarter : 3 * quarter])
    wait_until(lambda: applied(joiner) > 0, 60, 0.2, "the joiner to process calls of its partitions")
    cluster.produce(messages[3 * quarter :])
    joiner.stop()  # SIGTERM while calls flow: its partitions move back
    cluster.workers.remove(joiner)

    last: list[str] = []

    def verified() -> bool:
        done = cluster.run("verify", "--url", first.url)
        last[:] = [done.stdout.decode()[-3000:]]
        return done.returncode == 0

    try:
        wait_until(verified, 180, 2.0, "`stream verify` to find live state equal to the offline run")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- last verify output:\n{last[0] if last else ''}") from None
