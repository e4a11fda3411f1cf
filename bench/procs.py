"""Processes the benchmark starts: `stream worker`s of one app, and their figures."""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from stream.broker import free_port
from tests.integration.harness import WorkerProcess, parse_metrics

ROOT = Path(__file__).resolve().parents[1]


def vm_hwm_bytes(pid: int) -> int:
    """Peak resident set size of a live process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a live process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


def log_times(log: Path, needle: str) -> list[float]:
    """Unix times of the worker log lines that contain ``needle``."""
    times = []
    for line in log.read_text(errors="replace").splitlines():
        if needle in line:
            m = _LOG_TIME.match(line)
            if m:
                times.append(datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return times


#: Log lines that open and close a worker's restore: Faust's recovery, and the
#: bulk phase before it (which leaves Faust nothing to log when it read everything).
RESTORE_BEGIN = ("Restoring state from changelog topics", "Bulk restore: reading")
RESTORE_END = ("Done reading from changelog topics", "Bulk restore: done")


def restore_span(log: Path) -> float | None:
    """Seconds from a worker's first restore log line to its last (None without them)."""
    began = [t for needle in RESTORE_BEGIN for t in log_times(log, needle)]
    done = [t for needle in RESTORE_END for t in log_times(log, needle)]
    return max(max(done) - min(began), 1e-3) if began and done else None


@dataclass
class Worker(WorkerProcess):
    """The test harness's worker process, with a name, its data dir and the
    figures the benchmark reads from it."""

    name: str = "w0"
    data_dir: Path = Path()
    started_at: float = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Worker:
        self.started_at = time.time()
        super().start()
        return self

    def alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"worker {self.name} exited ({code}); see {self.log_path}")
        return True

    def wait_ready(self, timeout: float = 180.0) -> Worker:
        super().wait_ready(timeout)
        return self

    def metrics(self, timeout: float = 120.0) -> dict[str, float]:
        """The worker's metrics (a busy worker may answer slowly: its HTTP
        server shares the event loop with the agents)."""
        return parse_metrics(httpx.get(f"{self.url}/metrics", timeout=timeout).text)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss(self) -> int:
        return vm_hwm_bytes(self.pid)


@dataclass
class App:
    """One app id (consumer group, internal topics, outputs) over a given input topic."""

    broker_url: str
    app_id: str
    events_topic: str
    workdir: Path
    overrides: dict[str, str] = field(default_factory=dict)
    partitions: int = 4
    workers: list[Worker] = field(default_factory=list)

    def topic(self, name: str) -> str:
        return f"{self.app_id}.{name}"

    def env(self, data_dir: Path, web_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAM_")}
        env.update(
            STREAM_BROKER_URL=self.broker_url,
            STREAM_APP_ID=self.app_id,
            STREAM_CRITERIA=str(ROOT / "deploy" / "criteria.yaml"),
            STREAM_DATA_DIR=str(data_dir),
            STREAM_WEB_PORT=str(web_port),
            STREAM_PARTITIONS=str(self.partitions),
            STREAM_TOPIC_EVENTS=self.events_topic,
            STREAM_TOPIC_CRITERIA=self.topic("activation-criteria"),
            STREAM_TOPIC_CHANGES=self.topic("activation-changes"),
            STREAM_TOPIC_DLQ=self.topic("product-events-dlq"),
            STREAM_TOPIC_TRIGGERS=self.topic("lifecycle-triggers"),
            STREAM_TOPIC_ALERTS=self.topic("drift-alerts"),
            STREAM_LOG_LEVEL="info",
        )
        env.update(self.overrides)
        return env

    def start_worker(self, name: str, wipe: bool = False) -> Worker:
        data_dir = self.workdir / self.app_id / name / "data"
        if wipe and data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        log = self.workdir / self.app_id / f"{name}.log"
        worker = Worker(self.env(data_dir, port), log, port, name=name, data_dir=data_dir).start()
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
