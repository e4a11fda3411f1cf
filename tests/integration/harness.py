"""Real processes for integration tests: the embedded broker and `stream worker`s."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from stream.broker import die_with_parent, free_port

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
STREAM = str(Path(sys.executable).parent / "stream")
MAX_MESSAGE_BYTES = 100_000
PARK_MAX = 20
#: The tests re-publish the same event-time ranges again and again on shared
#: topics (and re-publish days-old calls as producer retries): with time
#: compressed like that, only the clusters that test lateness use a real one.
TEST_LATENESS_SECONDS = 10**8
#: Settings the tests run with (a benchmark runs with the defaults instead).
TEST_OVERRIDES = {
    "STREAM_ALLOWED_LATENESS_SECONDS": str(TEST_LATENESS_SECONDS),
    # small enough that a test can send an oversized message through the broker
    "STREAM_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
    # the offline expectation has no partition skew: never give up on parked calls
    "STREAM_PARK_GRACE_HOURS": "100000",
    "STREAM_PARK_MAX_PER_USER": str(PARK_MAX),
    # tiny caches: state is evicted and reloaded all the time, mid-batch too
    "STREAM_CACHE_ACCOUNTS": "3",
    "STREAM_CACHE_USERS": "5",
    # fast group joins: workers are restarted often here
    "STREAM_SESSION_TIMEOUT_SECONDS": "6",
    "STREAM_HEARTBEAT_INTERVAL_SECONDS": "0.5",
    "STREAM_REBALANCE_TIMEOUT_SECONDS": "3",
}


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {"name{labels}": value} (comments left out)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric_values(samples: dict[str, float], name: str) -> list[float]:
    """A metric's value for each of its label sets."""
    return [v for k, v in samples.items() if k == name or k.startswith(name + "{")]


def metric_sum(samples: dict[str, float], name: str) -> float:
    """Sum of a metric over all its label sets."""
    return sum(metric_values(samples, name))


def wait_until(fn: Callable[[], T], timeout: float = 60.0, interval: float = 0.2, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy (its value is returned)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except (httpx.HTTPError, OSError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


@dataclass
class WorkerProcess:
    """One `stream worker` subprocess with its own data dir and web port."""

    env: dict[str, str]
    log_path: Path
    web_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [STREAM, "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        return self

    def wait_ready(self, timeout: float = 120.0) -> WorkerProcess:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}; see {self.log_path}")
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200

        wait_until(ready, timeout, 0.5, f"worker on port {self.web_port} to be ready")
        return self

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@dataclass
class Cluster:
    """An app (one set of topics) on the shared broker, with its workers."""

    broker_url: str
    bootstrap: str
    app_id: str
    workdir: Path
    criteria_path: Path = ROOT / "deploy" / "criteria.yaml"
    partitions: int = 4
    workers: list[WorkerProcess] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=lambda: dict(TEST_OVERRIDES))

    @property
    def topics(self) -> dict[str, str]:
        return {
            "events": f"{self.app_id}.product-events",
            "criteria": f"{self.app_id}.activation-criteria",
            "changes": f"{self.app_id}.activation-changes",
            "dlq": f"{self.app_id}.product-events-dlq",
            "triggers": f"{self.app_id}.lifecycle-triggers",
            "alerts": f"{self.app_id}.drift-alerts",
        }

    def env(self, data_dir: Path, web_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
        env.update(
            STREAM_BROKER_URL=self.broker_url,
            STREAM_APP_ID=self.app_id,
            STREAM_CRITERIA=str(self.criteria_path),
            STREAM_DATA_DIR=str(data_dir),
            STREAM_WEB_PORT=str(web_port),
            STREAM_PARTITIONS=str(self.partitions),
            STREAM_TOPIC_EVENTS=self.topics["events"],
            STREAM_TOPIC_CRITERIA=self.topics["criteria"],
            STREAM_TOPIC_CHANGES=self.topics["changes"],
            STREAM_TOPIC_DLQ=self.topics["dlq"],
            STREAM_TOPIC_TRIGGERS=self.topics["triggers"],
            STREAM_TOPIC_ALERTS=self.topics["alerts"],
            **self.overrides,
        )
        return env

    def create_input_topic(self, partitions: int) -> None:
        """Create the input topic before any worker does (with its own count)."""
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(self.topics["events"], partitions, 1)])
        for future in futures.values():
            future.result(30)

    def add_worker(self, name: str | None = None, wipe: bool = False) -> WorkerProcess:
        name = name or f"w{len(self.workers)}"
        data_dir = self.workdir / name / "data"
        if wipe and data_dir.exists():
            import shutil

            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        worker = WorkerProcess(self.env(data_dir, port), self.workdir / f"{name}.log", port).start()
        self.workers.append(worker)
        return worker

    def run(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        env = self.env(self.workdir / "cli", 6066)
        return subprocess.run([STREAM, *args], env=env, input=stdin, capture_output=True, timeout=120, check=False)

    def produce(self, messages: Iterable[tuple[bytes | None, bytes]], topic: str | None = None) -> int:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})
        n = 0
        for key, value in messages:
            producer.produce(topic or self.topics["events"], key=key, value=value)
            n += 1
            if n % 1000 == 0:
                producer.poll(0)
        assert producer.flush(60) == 0
        return n

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


class TopicReader:
    """Reads a whole topic from the start, accumulating as it goes."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        meta = self.consumer.list_topics(topic, timeout=10).topics[topic]
        self.consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        self.messages: list[Any] = []

    def poll(self) -> list[Any]:
        for msg in self.consumer.consume(5000, 0.5):
            if msg.error() is None:
                self.messages.append(msg)
        return self.messages

    def values(self) -> list[dict[str, Any]]:
        return [orjson.loads(m.value()) for m in self.poll()]

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
