"""Processes the benchmark starts: `stream worker`s of one app, and their figures."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

from stream.broker import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
STREAM = str(Path(sys.executable).parent / "stream")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {"name{labels}": value} (comments left out)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric_sum(samples: dict[str, float], name: str) -> float:
    """Sum of a metric over all its label sets."""
    return sum(v for k, v in samples.items() if k == name or k.startswith(name + "{"))


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


@dataclass
class Worker:
    """One `stream worker` process with its own data dir and web port."""

    name: str
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    web_port: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> Worker:
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.started_at = time.time()
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

    def alive(self) -> bool:
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise RuntimeError(f"worker {self.name} exited ({code}); see {self.log_path}")
        return True

    def wait_ready(self, timeout: float = 180.0) -> Worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"worker {self.name} not ready after {timeout:.0f}s; see {self.log_path}")

    def metrics(self, timeout: float = 120.0) -> dict[str, float]:
        """The worker's metrics (a busy worker may answer slowly: its HTTP
        server shares the event loop with the agents)."""
        return parse_metrics(httpx.get(f"{self.url}/metrics", timeout=timeout).text)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss(self) -> int:
        return vm_hwm_bytes(self.pid)

    def stop(self, timeout: float = 60.0) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        worker = Worker(name, self.env(data_dir, port), data_dir, log, port).start()
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
