"""The eight fault scenarios of the reliability issue, and what runs them.

A scenario gets a fresh app (its own topics) on a shared embedded broker and
one worker; a producer thread publishes the workload at a steady rate so the
stream is mid-flight when a fault hits. When everything is published the
offline run of the input topic is computed once, and the live state is polled
until it equals it (or a timeout says how it differs). The result counts what
the issue asks for: calls in, dead letters, lost, double-counted, output
records repeated with the same id, and the recovery time after each fault.

Lost and double-counted add up three things, each against the offline run:
per-user event counts, dead letters per reason, and the ids of the outputs
that do not depend on processing order (drift alerts, absence triggers).
"""

from __future__ import annotations

import copy
import random
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml
from confluent_kafka import Producer

from stream.broker import EmbeddedBroker
from stream.core.criteria import Criteria, parse_criteria
from stream.settings import Settings, load_settings
from stream.verify import Report, expected_pipeline, expected_views, fetch_views, verify
from stream.workload import WorkloadSpec, generate_messages
from tests.integration.harness import (
    ROOT,
    TEST_OVERRIDES,
    Cluster,
    WorkerProcess,
    metric_sum,
    metric_values,
    parse_metrics,
    wait_until,
)

Message = tuple[bytes | None, bytes]

#: The tests' settings (small message cap, patient parking, fast group joins)
#: with the production lateness and caches: chaos tests event time for real.
CHAOS_OVERRIDES = {
    **{k: v for k, v in TEST_OVERRIDES.items() if not k.startswith("STREAM_CACHE_")},
    "STREAM_ALLOWED_LATENESS_SECONDS": "21600",
    # longer than any stall a fault causes (the 15 s freeze, the backlog after
    # it), as in production; short enough that the final sweep comes soon
    "STREAM_IDLE_LANE_SECONDS": "60",
    "STREAM_TICK_SECONDS": "1",
}
FREEZE_SECONDS = 15.0
#: Scenarios that restart or add workers publish for at least this long: each
#: restart takes seconds, and every one must hit while calls flow.
RESTARTS_PUBLISH_S = 60.0
INPUT_PARTITIONS = 4


@dataclass(frozen=True)
class Scale:
    name: str
    accounts: int
    days: int
    #: messages published per second while faults are injected
    rate: float
    hostile: int
    #: seconds to wait for the live state to equal the offline run
    timeout: float


SCALES = {
    "full": Scale("full", accounts=1000, days=8, rate=3000.0, hostile=10_000, timeout=900.0),
    "short": Scale("short", accounts=40, days=6, rate=1000.0, hostile=1_000, timeout=300.0),
}


@dataclass
class Result:
    scenario: str
    messages_in: int = 0
    track_calls: int = 0
    dlq: int = 0
    lost: int = 0
    double_counted: int = 0
    duplicate_outputs: int = 0
    recovery_s: float | None = None
    converge_s: float = 0.0
    ok: bool = False
    #: faults injected (each with its recovery time)
    faults: int = 0
    #: of those, the ones that ended while calls were still being published
    faults_in_flight: int = 0
    criteria_version: int = 0
    #: calls the workers skipped as already applied (since their last start)
    duplicates_skipped: int = 0
    #: messages the scenario published a second time
    republished: int = 0
    peak_rss: int = 0
    notes: list[str] = field(default_factory=list)
    report: Report | None = None

    def row(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "messages_in": self.messages_in,
            "track_calls": self.track_calls,
            "dlq": self.dlq,
            "lost": self.lost,
            "double_counted": self.double_counted,
            "duplicate_outputs": self.duplicate_outputs,
            "recovery_s": None if self.recovery_s is None else round(self.recovery_s, 1),
            "converge_s": round(self.converge_s, 1),
            "ok": self.ok,
            "notes": self.notes,
        }


def scrape(worker: WorkerProcess) -> dict[str, float]:
    """One worker's metric samples (none when it does not answer)."""
    try:
        return parse_metrics(worker.get("/metrics").text)
    except httpx.HTTPError:
        return {}


def metric_total(worker: WorkerProcess, name: str) -> float:
    """Sum of a metric's samples on one worker (0 when it does not answer)."""
    return metric_sum(scrape(worker), name)


def metric_max(worker: WorkerProcess, name: str) -> float:
    """The largest of a metric's samples (over its label sets) on one worker."""
    return max(metric_values(scrape(worker), name), default=0.0)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Run:
    """One scenario's cluster, workload and producer thread."""

    def __init__(self, name: str, broker: EmbeddedBroker, workdir: Path, scale: Scale, seed: int) -> None:
        self.name, self.broker, self.scale = name, broker, scale
        self.rng = random.Random(seed)
        self.cluster = Cluster(
            broker.url, broker.bootstrap, f"chaos-{name}-{seed}", workdir / name, overrides=dict(CHAOS_OVERRIDES)
        )
        self.cluster.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster.create_input_topic(INPUT_PARTITIONS)
        self.criteria = criteria_of(ROOT / "deploy" / "criteria.yaml")
        self.result = Result(name)
        self.recoveries: list[float] = []
        self.produced = 0
        self.total = 0
        self.rate = scale.rate
        self.delivery_errors: list[str] = []
        self._thread: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        return load_settings(self.cluster.env(self.cluster.workdir / "cli", 6066))

    def workload(self) -> list[Message]:
        spec = WorkloadSpec(accounts=self.scale.accounts, days=self.scale.days, seed=self.rng.randrange(1 << 30))
        return list(generate_messages(spec))

    # ------------------------------------------------------------ producing

    def start_producing(self, messages: list[Message], at_least_s: float = 0.0) -> None:
        """Publish in a thread at the scale's rate, slower if needed to last
        ``at_least_s`` seconds (so faults that take seconds to set up, such as
        a worker joining, still hit while calls flow at the short scale)."""
        self.total = len(messages)
        self.rate = min(self.scale.rate, len(messages) / at_least_s) if at_least_s else self.scale.rate
        self._thread = threading.Thread(target=self._produce, args=(messages,), daemon=True)
        self._thread.start()

    def _produce(self, messages: list[Message]) -> None:
        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                self.delivery_errors.append(str(err))

        producer = Producer({"bootstrap.servers": self.broker.bootstrap, "linger.ms": 5})
        start = time.monotonic()
        for n, (key, value) in enumerate(messages):
            while True:
                try:
                    producer.produce(self.cluster.topics["events"], key=key, value=value, on_delivery=delivered)
                    break
                except BufferError:  # the broker is frozen: wait for room, like any producer
                    producer.poll(0.1)
            self.produced = n + 1
            if n % 200 == 0:
                producer.poll(0)
                ahead = (n + 1) / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)  # pacing the workload, not waiting for a condition
        producer.flush(120)

    def wait_produced(self, fraction: float) -> None:
        wait_until(lambda: self.produced >= fraction * self.total, 600, 0.05, f"{fraction:.0%} of the workload")

    def producing(self, wait: float = 0.0) -> bool:
        """True while the producer thread is still publishing (after waiting
        at most ``wait`` seconds for it to end)."""
        assert self._thread is not None
        self._thread.join(wait)
        return self._thread.is_alive()

    def finish_producing(self) -> None:
        assert self._thread is not None
        self._thread.join(600)
        if self.delivery_errors:
            raise AssertionError(f"producer delivery errors: {self.delivery_errors[:5]}")

    # ---------------------------------------------------------------- faults

    def applied(self) -> float:
        return sum(metric_total(w, "stream_account_calls_total") for w in self.cluster.workers)

    def recovered(self, fault_end: float) -> None:
        """Wait until every worker is ready and calls are applied again; keep
        the seconds since the fault ended."""
        self.result.faults_in_flight += self.producing()
        before = self.applied()
        for w in self.cluster.workers:
            w.wait_ready(180)
        wait_until(lambda: self.applied() > before, 180, 0.1, "processing to resume after the fault")
        self.recoveries.append(time.monotonic() - fault_end)

    def kill_and_restart(self, worker: WorkerProcess, wipe: bool = False) -> None:
        worker.kill()
        end = time.monotonic()
        if wipe:
            data_dir = Path(worker.env["STREAM_DATA_DIR"])
            shutil.rmtree(data_dir)
            data_dir.mkdir(parents=True)
        worker.start()
        self.recovered(end)

    # ----------------------------------------------------------------- check

    def converge(self, criteria: Criteria) -> None:
        """Compute the offline run once, poll the accounts until they match,
        then compare everything (state, DLQ, outputs)."""
        settings = self.settings
        started = time.monotonic()
        pipeline = expected_pipeline(settings, criteria)
        accounts = {p: v for p, v in expected_views(pipeline, criteria).items() if "/users/" not in p}
        url = self.cluster.workers[0].url

        def accounts_equal() -> bool:
            live = fetch_views(url, list(accounts))
            return all(live.get(p) == v for p, v in accounts.items())

        report: Report | None = None
        try:
            wait_until(accounts_equal, self.scale.timeout, 1.0, "every account to equal the offline run")
        except AssertionError as exc:
            self.result.notes.append(str(exc).split(";")[0])
        for _attempt in range(5):
            report = verify(settings, criteria, url, pipeline)
            if report.ok:
                break
            time.sleep(2.0)  # outputs are published before state: a moment settles the topics
        assert report is not None
        self.result.converge_s = time.monotonic() - started
        self.result.report = report
        r = self.result
        r.messages_in = self.total
        r.track_calls = report.events_expected
        r.dlq = sum(report.dlq_found.values())
        dlq_missing = sum(max(0, report.dlq_expected[k] - report.dlq_found[k]) for k in report.dlq_expected)
        dlq_extra = sum(max(0, report.dlq_found[k] - report.dlq_expected[k]) for k in report.dlq_found)
        r.lost = report.lost + dlq_missing + sum(len(o.missing) for o in report.outputs.values())
        r.double_counted = report.double_counted + dlq_extra + sum(len(o.unexpected) for o in report.outputs.values())
        r.duplicate_outputs = sum(o.repeats for o in report.outputs.values())
        r.recovery_s = max(self.recoveries) if self.recoveries else None
        r.faults = len(self.recoveries)
        r.criteria_version = criteria.version
        r.duplicates_skipped = int(
            sum(metric_total(w, "stream_duplicates_skipped_total") for w in self.cluster.workers)
        )
        r.ok = report.ok

    def close(self) -> None:
        self.cluster.stop()


def criteria_of(path: Path) -> Criteria:
    return parse_criteria(yaml.safe_load(path.read_text()))


def random_points(rng: random.Random, n: int) -> list[float]:
    """Where in the workload faults hit: mid-flight, in order, each in its own
    share of 15%..85% of the workload (so a restart has time to finish before
    the next fault, and the last one still hits while calls flow)."""
    width = 0.7 / n
    return [0.15 + (i + 0.25 + 0.5 * rng.random()) * width for i in range(n)]


# ------------------------------------------------------------- the scenarios


def kill_three_times(run: Run) -> Criteria:
    worker = run.cluster.workers[0]
    run.start_producing(run.workload(), RESTARTS_PUBLISH_S)
    for point in random_points(run.rng, 3):
        run.wait_produced(point)
        run.kill_and_restart(worker)
    run.finish_producing()
    return run.criteria


def join_and_leave(run: Run) -> Criteria:
    run.start_producing(run.workload(), RESTARTS_PUBLISH_S)
    run.wait_produced(0.3)
    joiner = run.cluster.add_worker("joiner")
    run.recovered(time.monotonic())
    run.wait_produced(0.7)
    joiner.stop()  # SIGTERM while calls flow: its partitions move back
    run.cluster.workers.remove(joiner)
    run.recovered(time.monotonic())
    run.finish_producing()
    return run.criteria


def broker_freeze(run: Run) -> Criteria:
    run.start_producing(run.workload())
    run.wait_produced(0.5)
    run.broker.pause()
    try:
        time.sleep(FREEZE_SECONDS)  # the fault itself lasts this long
    finally:
        run.broker.resume()
    run.recovered(time.monotonic())
    run.finish_producing()
    return run.criteria


def empty_data_dir(run: Run) -> Criteria:
    run.start_producing(run.workload())
    run.wait_produced(0.5)
    run.kill_and_restart(run.cluster.workers[0], wipe=True)
    run.finish_producing()
    return run.criteria


def producer_retries(run: Run) -> Criteria:
    """Every 10th message published twice (same messageId), and a stretch of
    the stream replayed whole right after it was first published."""
    messages = run.workload()
    out: list[Message] = []
    for n, m in enumerate(messages):
        out.append(m)
        if n % 10 == 9:
            out.append(m)
    start = len(out) * 2 // 5
    replay = out[start : start + max(200, len(out) // 50)]
    out[start + len(replay) : start + len(replay)] = replay
    run.result.republished = len(out) - len(messages)
    run.result.notes.append(f"{run.result.republished} messages published again")
    run.start_producing(out)
    run.finish_producing()
    return run.criteria


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def late_and_out_of_order(run: Run) -> Criteria:
    """Messages shuffled within each hour of event time (out of order, well
    within the allowed lateness); and copies of some track calls (new
    messageIds) dated 3 hours back (late but allowed: applied) and 2 days back
    (beyond the lateness: the DLQ, reason ``late``)."""
    messages = run.workload()
    by_hour: dict[int, list[Message]] = {}
    for key, value in messages:
        doc = orjson.loads(value)
        by_hour.setdefault(_ms(doc["timestamp"]) // 3_600_000, []).append((key, value))
    out: list[Message] = []
    injected = 0
    for hour in sorted(by_hour):
        block = by_hour[hour]
        run.rng.shuffle(block)
        for key, value in block:
            out.append((key, value))
            doc = orjson.loads(value)
            if doc["type"] == "track" and run.rng.random() < 0.01:
                for back, tag in ((timedelta(hours=3), "within"), (timedelta(days=2), "beyond")):
                    copy_ = dict(doc, messageId=f"{doc['messageId']}-{tag}")
                    copy_["timestamp"] = _iso(_ms(doc["timestamp"]) - int(back.total_seconds() * 1000))
                    out.append((key, orjson.dumps(copy_)))
                    injected += 1
    run.result.notes.append(f"{injected} back-dated copies")
    run.start_producing(out)
    run.finish_producing()
    return run.criteria


def hostile_input(run: Run) -> Criteria:
    """Bad messages interleaved with the workload, and batches mixing good and
    bad calls after it (their good calls are dated at the workload's end, so
    they are not late); the worker must neither restart nor grow without
    bound."""
    from stream.hostile import count_good_calls, hostile_messages

    good = run.workload()
    last_ms = max(_ms(orjson.loads(v)["timestamp"]) for _k, v in good[-50:])
    wall_ms = int(time.time() * 1000)  # what the broker will stamp: some calls are bad only against it
    hostile = hostile_messages(run.scale.hostile, seed=run.rng.randrange(1 << 30), now_ms=last_ms, broker_ms=wall_ms)
    bad = [m for m in hostile if count_good_calls([m]) == 0]
    mixed = [m for m in hostile if count_good_calls([m]) > 0]
    every = max(1, len(good) // max(1, len(bad)))
    out: list[Message] = []
    for n, m in enumerate(good):
        out.append(m)
        if n % every == 0 and bad:
            out.append(bad.pop())
    out += bad + mixed
    run.result.notes.append(f"{len(hostile)} hostile messages ({len(mixed)} carrying good calls)")
    worker = run.cluster.workers[0]
    assert worker.process is not None
    pid = worker.process.pid
    rss_start = rss_bytes(pid)
    peak = rss_start
    run.start_producing(out)
    while run.producing(0.5):
        peak = max(peak, rss_bytes(pid))
    run.finish_producing()
    if worker.process is None or worker.process.poll() is not None or worker.process.pid != pid:
        raise AssertionError("the worker exited on hostile input")
    if metric_max(worker, "stream_rebalances_total") > 1:  # one assignment per consumer group
        run.result.notes.append("the worker rejoined a consumer group during the scenario")
    run.result.notes.append(f"rss {rss_start / 2**20:.0f} -> peak {peak / 2**20:.0f} MiB")
    run.result.peak_rss = peak
    return run.criteria


def criteria_change_during_kills(run: Run) -> Criteria:
    """Scenario 1 with a new criteria version published mid-stream."""
    doc = yaml.safe_load((ROOT / "deploy" / "criteria.yaml").read_text())
    new_doc = copy.deepcopy(doc)
    new_doc["version"] = int(doc["version"]) + 1
    new_doc["user_milestones"].append({"id": "ai_user", "event": "AI Edit Applied"})
    path = run.cluster.workdir / "criteria-next.yaml"
    path.write_text(yaml.safe_dump(new_doc))
    worker = run.cluster.workers[0]
    run.start_producing(run.workload(), RESTARTS_PUBLISH_S)
    points = random_points(run.rng, 4)
    for n, point in enumerate(points):
        run.wait_produced(point)
        if n == 1:
            done = run.cluster.run("criteria", "publish", str(path))
            if done.returncode != 0:
                raise AssertionError(done.stderr.decode())
        else:
            run.kill_and_restart(worker)
    run.finish_producing()
    return parse_criteria(new_doc)


SCENARIOS: dict[str, Callable[[Run], Criteria]] = {
    "kill-9 x3": kill_three_times,
    "join+leave": join_and_leave,
    "broker freeze": broker_freeze,
    "empty data dir": empty_data_dir,
    "producer retries": producer_retries,
    "late+out of order": late_and_out_of_order,
    "hostile input": hostile_input,
    "criteria change+kills": criteria_change_during_kills,
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


def run_scenario(name: str, broker: EmbeddedBroker, workdir: Path, scale: Scale, seed: int = 1) -> Result:
    run = Run(slug(name), broker, workdir, scale, seed)
    run.result.scenario = name
    try:
        run.cluster.add_worker().wait_ready(180)
        criteria = SCENARIOS[name](run)
        run.converge(criteria)
    finally:
        run.close()
    return run.result
